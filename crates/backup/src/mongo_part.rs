//! MongoDB parts, exported through the driver (no `mongodump` here): one part per collection,
//! its documents as concatenated BSON (what `mongodump` writes to `<coll>.bson`), streamed; its
//! index definitions and options in the manifest. Restores into any MongoDB, or SecantusDB
//! (docs/backup.md#mongodb).

use std::io::Read;
use std::path::Path;

use futures::TryStreamExt;
use mongodb::IndexModel;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use tsp_hub::MongoStore;

use crate::error::BackupError;
use crate::manifest::Part;
use crate::part::{PartWriter, open_part};
use crate::seal::Key;

/// Documents (or bytes) per `insert_many` on restore.
const DOCS_PER_INSERT: usize = 1_000;
const BYTES_PER_INSERT: usize = 8 * 1024 * 1024;

fn err(store: &MongoStore, e: tsp_hub::HubError) -> BackupError {
    BackupError::store("mongo", store.name(), e)
}

/// Collections of the instance's database that a backup holds: all but `system.*`.
async fn collections(store: &MongoStore) -> Result<Vec<(String, Document)>, BackupError> {
    let db = store.database();
    let cursor = store
        .timed("list collections", db.list_collections())
        .await
        .map_err(|e| err(store, e))?;
    let specs: Vec<_> = store
        .timed("list collections", cursor.try_collect())
        .await
        .map_err(|e| err(store, e))?;
    let mut out: Vec<(String, Document)> = specs
        .into_iter()
        .filter(|s| !s.name.starts_with("system."))
        .map(|s| {
            let options = mongodb::bson::to_document(&s.options).unwrap_or_default();
            (s.name, options)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

async fn server_version(store: &MongoStore) -> String {
    let r = store
        .timed(
            "buildInfo",
            store.database().run_command(doc! {"buildInfo": 1}),
        )
        .await;
    r.ok()
        .and_then(|d| d.get_str("version").ok().map(str::to_string))
        .unwrap_or_default()
}

fn file_name(instance: &str, k: usize, collection: &str) -> String {
    let safe: String = collection
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("mongo-{instance}-{k:03}-{safe}.bson.zst")
}

fn ext_json(d: Document) -> serde_json::Value {
    Bson::Document(d).into_relaxed_extjson()
}

/// Exports every collection of the instance's database, one part each.
pub(crate) async fn export(
    store: &MongoStore,
    dir: &Path,
    key: Option<&Key>,
) -> Result<Vec<Part>, BackupError> {
    let version = server_version(store).await;
    let mut parts = Vec::new();
    for (k, (name, options)) in collections(store).await?.into_iter().enumerate() {
        let coll = store.database().collection::<RawDocumentBuf>(&name);
        let taken_at = chrono::Utc::now().to_rfc3339();
        let indexes = index_documents(store, &name).await?;
        let file = file_name(store.name(), k, &name);
        let mut writer = PartWriter::create(&dir.join(&file), key)?;
        let mut cursor = store
            // In `_id` order (the `_id` index): a document changed during the export is read
            // once, where a collection scan may meet it twice.
            .timed("export", coll.find(doc! {}).sort(doc! {"_id": 1}))
            .await
            .map_err(|e| err(store, e))?;
        let mut docs = 0u64;
        while store
            .timed("export", cursor.advance())
            .await
            .map_err(|e| err(store, e))?
        {
            writer.write_all(cursor.current().as_bytes())?;
            docs += 1;
        }
        let raw_bytes = writer.raw_bytes;
        let written = writer.finish()?;
        parts.push(Part {
            store: "mongo".into(),
            instance: store.name().to_string(),
            file,
            object: format!("{}.{name}", store.database_name()),
            bytes: written.bytes,
            raw_bytes,
            sha256: written.sha256,
            server_version: version.clone(),
            taken_at,
            counts: [("documents".to_string(), docs)].into_iter().collect(),
            details: serde_json::json!({
                "collection": name,
                "options": ext_json(options),
                "indexes": indexes.into_iter().map(ext_json).collect::<Vec<_>>(),
            }),
        });
    }
    Ok(parts)
}

async fn index_documents(store: &MongoStore, name: &str) -> Result<Vec<Document>, BackupError> {
    let coll = store.database().collection::<Document>(name);
    let cursor = store
        .timed("list indexes", coll.list_indexes())
        .await
        .map_err(|e| err(store, e))?;
    let models: Vec<IndexModel> = store
        .timed("list indexes", cursor.try_collect())
        .await
        .map_err(|e| err(store, e))?;
    Ok(models
        .iter()
        .filter_map(|m| mongodb::bson::to_document(m).ok())
        .collect())
}

fn collection_of(part: &Part) -> String {
    part.details
        .get("collection")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Collections of `parts` that hold documents in the instance now (the migration record
/// aside): what a restore would overwrite.
pub(crate) async fn occupied(
    store: &MongoStore,
    parts: &[&Part],
) -> Result<Vec<String>, BackupError> {
    let mut out = Vec::new();
    for p in parts {
        let name = collection_of(p);
        if name == "_tsp_migrations" {
            continue;
        }
        let coll = store.database().collection::<Document>(&name);
        let n = store
            .timed("count", coll.estimated_document_count())
            .await
            .map_err(|e| err(store, e))?;
        if n > 0 {
            out.push(name);
        }
    }
    Ok(out)
}

/// Reads the next BSON document of `r`; `None` at a clean end.
fn next_document(r: &mut dyn Read, part: &str) -> Result<Option<RawDocumentBuf>, BackupError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(BackupError::part(part, format!("cannot read: {e}"))),
    }
    let n = i32::from_le_bytes(len);
    if !(5..=16 * 1024 * 1024 + 16 * 1024).contains(&n) {
        return Err(BackupError::part(
            part,
            format!("not BSON: a document of {n} bytes"),
        ));
    }
    let mut bytes = vec![0u8; n as usize];
    bytes[..4].copy_from_slice(&len);
    r.read_exact(&mut bytes[4..])
        .map_err(|e| BackupError::part(part, format!("a document is cut short: {e}")))?;
    RawDocumentBuf::from_bytes(bytes)
        .map(Some)
        .map_err(|e| BackupError::part(part, format!("not BSON: {e}")))
}

/// Restores one collection: drops it when `replace`, inserts its documents in batches, then
/// creates its indexes; checks the count against the manifest.
pub(crate) async fn restore(
    store: &MongoStore,
    dir: &Path,
    part: &Part,
    key: Option<&Key>,
    replace: bool,
) -> Result<u64, BackupError> {
    let name = collection_of(part);
    let db = store.database();
    // The migration record `migrate` wrote on the empty target gives way to the restored one.
    if replace || name == "_tsp_migrations" {
        store
            .timed("drop", db.collection::<Document>(&name).drop())
            .await
            .map_err(|e| err(store, e))?;
    }
    let coll = db.collection::<RawDocumentBuf>(&name);
    let mut input = open_part(&dir.join(&part.file), key)?;
    let (mut batch, mut bytes, mut restored) = (Vec::new(), 0usize, 0u64);
    loop {
        let next = next_document(input.as_mut(), &part.file)?;
        let end = next.is_none();
        if let Some(d) = next {
            bytes += d.as_bytes().len();
            batch.push(d);
        }
        if !batch.is_empty() && (end || batch.len() >= DOCS_PER_INSERT || bytes >= BYTES_PER_INSERT)
        {
            restored += batch.len() as u64;
            store
                .timed("restore", coll.insert_many(std::mem::take(&mut batch)))
                .await
                .map_err(|e| err(store, e))?;
            bytes = 0;
        }
        if end {
            break;
        }
    }
    create_indexes(store, &name, part).await?;
    let want = part.counts.get("documents").copied().unwrap_or(0);
    if restored != want {
        return Err(BackupError::part(
            &part.file,
            format!("restored {restored} documents, the export had {want}"),
        ));
    }
    Ok(restored)
}

async fn create_indexes(store: &MongoStore, name: &str, part: &Part) -> Result<(), BackupError> {
    let specs = part
        .details
        .get("indexes")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let mut models = Vec::new();
    for spec in specs {
        let bad = |m: String| BackupError::part(&part.file, format!("index definition: {m}"));
        let bson = Bson::try_from(spec).map_err(|e| bad(e.to_string()))?;
        let Bson::Document(d) = bson else {
            return Err(bad("not a document".into()));
        };
        let model: IndexModel = mongodb::bson::from_document(d).map_err(|e| bad(e.to_string()))?;
        if model.options.as_ref().and_then(|o| o.name.as_deref()) == Some("_id_") {
            continue;
        }
        models.push(model);
    }
    if models.is_empty() {
        // An empty collection still exists after a restore, as it did in the backup.
        let _ = store
            .timed("create", store.database().create_collection(name))
            .await;
        return Ok(());
    }
    let coll = store.database().collection::<Document>(name);
    store
        .timed("create indexes", coll.create_indexes(models))
        .await
        .map_err(|e| err(store, e))?;
    Ok(())
}
