//! `#[derive(Settings)]`: a settings struct of `tsp-config` declares its configuration keys, so
//! each key is written once, as a field: its name, doc comment (the reference's description),
//! type, bounds, default and secrecy. The derive writes the schema's `Field` list of the struct
//! (`crate::declare::Declare`); loading still deserializes the struct from the validated
//! values. Only for use inside `tsp-config` (the generated code names `crate::`).
//!
//! Field attributes, `#[setting(...)]`:
//! - `ty = EXPR`: the key's `FieldType`; without it, it follows from the Rust type (`String`,
//!   `bool`, `Duration`, `SecretString`, `SocketAddr`, and `Option` of those).
//! - `default = EXPR` (a constant: `"30s"`, `3306`, `true`), or `default_fn = PATH` (a
//!   `fn(&str) -> Option<RawValue>` of the instance name); neither: no default.
//! - `nested` or `nested = "variant"`: a struct of keys under this field's name.
//! - `each(name = EXPR, ...)`: one key per name under this field (a map), each with its
//!   default, described as the field is with the name added; `name = (EXPR, "…")` describes
//!   one key in its own words.
//! - `key = "name"`: the key's name when it is not the field's.
//! - `skip`: not a key.
//! - `only = "variant"`, `not_for = "variant"`: declared for one variant only, or not for one.
//! - `variant = "name", ...`: in a second attribute, what differs for that variant (`ty`,
//!   `default`, `doc = "…"`).

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{
    Attribute, Data, DeriveInput, Expr, ExprLit, Fields, Lit, Meta, Path, Token, Type,
    parse_macro_input,
};

/// See the crate's documentation.
#[proc_macro_derive(Settings, attributes(setting))]
pub fn derive_settings(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(input, "Settings: structs only"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            input,
            "Settings: named fields only",
        ));
    };
    let mut body = Vec::new();
    for f in &fields.named {
        body.push(field(f)?);
    }
    let name = &input.ident;
    Ok(quote! {
        impl crate::declare::Declare for #name {
            fn declare(keys: &mut crate::declare::Keys, variant: &str) {
                let _ = variant;
                #(#body)*
            }
        }
    })
}

/// What one `#[setting(...)]` attribute says.
#[derive(Default)]
struct Setting {
    ty: Option<Expr>,
    default: Option<Expr>,
    default_fn: Option<Path>,
    nested: Option<Option<String>>,
    each: Vec<(String, Expr)>,
    key: Option<String>,
    skip: bool,
    only: Option<String>,
    not_for: Option<String>,
    variant: Option<String>,
    doc: Option<String>,
}

fn string(e: &Expr) -> syn::Result<String> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}

fn parse_setting(attr: &Attribute) -> syn::Result<Setting> {
    let mut s = Setting::default();
    let metas = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
    for meta in metas {
        let name = meta
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match (name.as_str(), &meta) {
            ("skip", Meta::Path(_)) => s.skip = true,
            ("nested", Meta::Path(_)) => s.nested = Some(None),
            ("nested", Meta::NameValue(nv)) => s.nested = Some(Some(string(&nv.value)?)),
            ("ty", Meta::NameValue(nv)) => s.ty = Some(nv.value.clone()),
            ("default", Meta::NameValue(nv)) => s.default = Some(nv.value.clone()),
            ("default_fn", Meta::NameValue(nv)) => match &nv.value {
                Expr::Path(p) => s.default_fn = Some(p.path.clone()),
                other => return Err(syn::Error::new_spanned(other, "expected a function path")),
            },
            ("key", Meta::NameValue(nv)) => s.key = Some(string(&nv.value)?),
            ("only", Meta::NameValue(nv)) => s.only = Some(string(&nv.value)?),
            ("not_for", Meta::NameValue(nv)) => s.not_for = Some(string(&nv.value)?),
            ("variant", Meta::NameValue(nv)) => s.variant = Some(string(&nv.value)?),
            ("doc", Meta::NameValue(nv)) => s.doc = Some(string(&nv.value)?),
            ("each", Meta::List(list)) => {
                let entries =
                    Punctuated::<Meta, Token![,]>::parse_terminated.parse2(list.tokens.clone())?;
                for e in entries {
                    let Meta::NameValue(nv) = e else {
                        return Err(syn::Error::new_spanned(e, "expected name = default"));
                    };
                    let Some(id) = nv.path.get_ident() else {
                        return Err(syn::Error::new_spanned(nv.path, "expected a name"));
                    };
                    s.each.push((id.to_string(), nv.value.clone()));
                }
            }
            _ => return Err(syn::Error::new_spanned(meta, "unknown setting attribute")),
        }
    }
    Ok(s)
}

/// The doc comment's lines, trimmed and joined by spaces.
fn doc_of(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let Meta::NameValue(nv) = &a.meta
            && let Ok(text) = string(&nv.value)
        {
            lines.push(text.trim().to_string());
        }
    }
    lines.join(" ")
}

/// The `FieldType` a Rust type stands for, when it is unambiguous.
fn inferred(ty: &Type) -> Option<Tokens> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let name = last.ident.to_string();
    if name == "Option"
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
    {
        return inferred(inner);
    }
    let t = match name.as_str() {
        "String" => quote!(crate::field::FieldType::Str),
        "bool" => quote!(crate::field::FieldType::Bool),
        "Duration" => quote!(crate::field::FieldType::Duration),
        "SecretString" => quote!(crate::field::FieldType::Secret),
        "SocketAddr" => quote!(crate::field::FieldType::ListenAddr),
        _ => return None,
    };
    Some(t)
}

fn default_of(s: &Setting) -> Tokens {
    if let Some(f) = &s.default_fn {
        quote!(#f)
    } else if let Some(d) = &s.default {
        quote!(|_| ::core::option::Option::Some(crate::declare::IntoRaw::into_raw(#d)))
    } else {
        quote!(|_| ::core::option::Option::None)
    }
}

fn field(f: &syn::Field) -> syn::Result<Tokens> {
    let mut base = Setting::default();
    let mut variants = Vec::new();
    for a in f.attrs.iter().filter(|a| a.path().is_ident("setting")) {
        let s = parse_setting(a)?;
        if s.variant.is_some() {
            variants.push(s);
        } else {
            base = s;
        }
    }
    if base.skip {
        return Ok(quote!());
    }
    let ident = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
    let key = base.key.clone().unwrap_or(ident);
    if let Some(v) = &base.nested {
        let ty = &f.ty;
        let pass = match v {
            Some(v) => quote!(#v),
            None => quote!(variant),
        };
        return Ok(quote! {
            keys.nested(#key, |keys| <#ty as crate::declare::Declare>::declare(keys, #pass));
        });
    }
    let doc = doc_of(&f.attrs);
    if doc.is_empty() {
        return Err(syn::Error::new_spanned(
            f,
            "a configuration key needs a doc comment",
        ));
    }
    let ty = match (&base.ty, inferred(&f.ty)) {
        (Some(t), _) => quote!(#t),
        (None, Some(t)) => t,
        (None, None) => {
            return Err(syn::Error::new_spanned(
                &f.ty,
                "give the key's type: ty = FieldType::…",
            ));
        }
    };
    if !base.each.is_empty() {
        return each_key(&key, &ty, &doc, &base.each);
    }
    let default = default_of(&base);
    let arms = variant_arms(&key, &ty, &default, &doc, &variants);
    let declare = quote! {
        match variant {
            #(#arms)*
            _ => keys.key(#key, #ty, #default, #doc),
        }
    };
    Ok(match (&base.only, &base.not_for) {
        (Some(only), _) => quote!(if variant == #only { #declare }),
        (None, Some(not)) => quote!(if variant != #not { #declare }),
        (None, None) => declare,
    })
}

/// One key per `each(...)` entry: `name = default`, or `name = (default, "its own description")`.
fn each_key(key: &str, ty: &Tokens, doc: &str, each: &[(String, Expr)]) -> syn::Result<Tokens> {
    let mut out = Vec::new();
    for (name, entry) in each {
        let k = format!("{key}.{name}");
        let (default, d) = match entry {
            Expr::Tuple(t) if t.elems.len() == 2 => (&t.elems[0], string(&t.elems[1])?),
            other => (other, format!("{doc} ({name})")),
        };
        out.push(quote! {
            keys.key(#k, #ty, |_| ::core::option::Option::Some(
                crate::declare::IntoRaw::into_raw(#default)), #d);
        });
    }
    Ok(quote!(#(#out)*))
}

/// The `match variant` arms of a key whose type, default or description differ by variant.
fn variant_arms(
    key: &str,
    ty: &Tokens,
    default: &Tokens,
    doc: &str,
    variants: &[Setting],
) -> Vec<Tokens> {
    variants
        .iter()
        .map(|v| {
            let name = v.variant.clone().unwrap_or_default();
            let vty =
                v.ty.as_ref()
                    .map(|t| quote!(#t))
                    .unwrap_or_else(|| ty.clone());
            let vdefault = if v.default.is_some() || v.default_fn.is_some() {
                default_of(v)
            } else {
                default.clone()
            };
            let vdoc = v.doc.clone().unwrap_or_else(|| doc.to_string());
            quote!(#name => keys.key(#key, #vty, #vdefault, #vdoc),)
        })
        .collect()
}
