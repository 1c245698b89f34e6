//! How a settings struct declares its keys: `#[derive(Settings)]` (crate `tsp-config-derive`)
//! writes a [`Declare`] impl from the struct's fields, and the schema's tables are the lists it
//! makes ([`fields_of`]). A key is written once, as a field.

use crate::field::{DefaultFn, Field, FieldType};
use crate::raw::RawValue;

/// A settings struct that declares its keys.
pub(crate) trait Declare {
    /// Adds every key of the struct to `keys`, as `variant` (a store kind for the groups the
    /// stores share, "" elsewhere) has them.
    fn declare(keys: &mut Keys, variant: &str);
}

/// The keys declared so far, under the prefix of the struct being declared.
#[derive(Default)]
pub(crate) struct Keys {
    prefix: String,
    fields: Vec<Field>,
}

impl Keys {
    /// Declares `key` (relative to the current prefix).
    pub(crate) fn key(
        &mut self,
        key: &'static str,
        ty: FieldType,
        default: DefaultFn,
        doc: &'static str,
    ) {
        let key = if self.prefix.is_empty() {
            key
        } else {
            // Built once per table (the tables are statics), so this leaks a bounded amount.
            Box::leak(format!("{}{key}", self.prefix).into_boxed_str())
        };
        self.fields.push(Field {
            key,
            ty,
            default,
            doc,
        });
    }

    /// Declares the keys `declare` adds under `name.`.
    pub(crate) fn nested(&mut self, name: &str, declare: impl FnOnce(&mut Keys)) {
        let outer = self.prefix.len();
        self.prefix.push_str(name);
        self.prefix.push('.');
        declare(self);
        self.prefix.truncate(outer);
    }
}

/// The keys `T` declares as `variant`, in field order.
pub(crate) fn fields_of<T: Declare>(variant: &str) -> Vec<Field> {
    let mut keys = Keys::default();
    T::declare(&mut keys, variant);
    keys.fields
}

/// A default written in a `#[setting(default = …)]` attribute.
pub(crate) trait IntoRaw {
    fn into_raw(self) -> RawValue;
}

impl IntoRaw for &str {
    fn into_raw(self) -> RawValue {
        RawValue::Str(self.to_string())
    }
}

impl IntoRaw for i64 {
    fn into_raw(self) -> RawValue {
        RawValue::Int(self)
    }
}

impl IntoRaw for i32 {
    fn into_raw(self) -> RawValue {
        RawValue::Int(i64::from(self))
    }
}

impl IntoRaw for bool {
    fn into_raw(self) -> RawValue {
        RawValue::Bool(self)
    }
}

impl IntoRaw for Vec<RawValue> {
    fn into_raw(self) -> RawValue {
        RawValue::List(self)
    }
}
