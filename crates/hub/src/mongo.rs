//! MongoDB instances: one official-driver `Client` each.
//!
//! The driver's command monitoring feeds the hub metrics (every command, whoever runs it), and its
//! connection-pool events give the pool figures that the driver does not otherwise expose.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_recursion::async_recursion as boxed;
use mongodb::bson::{Document, doc};
use mongodb::error::ErrorKind;
use mongodb::event::EventHandler;
use mongodb::event::cmap::CmapEvent;
use mongodb::event::command::CommandEvent;
use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use mongodb::{Client, Database};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;
use tsp_config::{HealthSettings, MongoSettings, TlsMode};

use crate::error::{Cause, HubError, Redactor};
use crate::health::{InstanceHealth, PoolStats, Status};
use crate::metrics::{StoreMetrics, names};
use crate::rotation::AuthAlarm;
use crate::shared::Shared;

/// The collection in each database that records its applied schema steps (tsp-mobility's
/// `mongo_schema`); health reads it.
pub const MIGRATIONS_COLLECTION: &str = "_tsp_migrations";

const STORE: &str = "mongo";

#[derive(Default)]
struct PoolCounters {
    open: AtomicI64,
    checked_out: AtomicI64,
}

/// One MongoDB instance.
#[derive(Clone)]
pub struct MongoStore {
    settings: Arc<MongoSettings>,
    /// The driver client; a credential rotation ([`MongoStore::rotate`]) replaces it.
    client: Shared<Client>,
    /// The settings with the credentials in use.
    current: Shared<MongoSettings>,
    alarm: AuthAlarm,
    pool: Arc<PoolCounters>,
    version: Arc<OnceCell<String>>,
    metrics: StoreMetrics,
    redactor: Redactor,
}

/// Whether a connection string is a DNS seed list, which only a build with the driver's
/// resolver (`mongodb-srv` feature, docs/deploy.md#build) can follow. The configuration has
/// already checked the scheme, written as one of `mongodb` and `mongodb+srv`.
fn is_srv(uri: &str) -> bool {
    uri.trim_start().starts_with("mongodb+srv://")
}

async fn client_options(
    s: &MongoSettings,
    metrics: &StoreMetrics,
    pool: &Arc<PoolCounters>,
) -> Result<ClientOptions, String> {
    let mut opts = match &s.uri {
        Some(uri) if cfg!(not(feature = "mongodb-srv")) && is_srv(uri.expose_secret()) => {
            return Err(
                "uri: mongodb+srv needs a build with the `mongodb-srv` feature \
                        (cargo build --features mongodb-srv; the image has it)"
                    .into(),
            );
        }
        Some(uri) => ClientOptions::parse(uri.expose_secret())
            .await
            // The driver may quote the connection string: report the kind of error only.
            .map_err(|e| format!("uri is not a valid connection string ({})", kind_name(&e)))?,
        None => {
            let mut o = ClientOptions::builder()
                .hosts(vec![ServerAddress::Tcp {
                    host: s.host.clone(),
                    port: Some(s.port),
                }])
                .build();
            if s.replica_set.is_empty() {
                o.direct_connection = Some(true);
            } else {
                o.repl_set_name = Some(s.replica_set.clone());
            }
            if !s.username.is_empty() {
                o.credential = Some(
                    Credential::builder()
                        .username(s.username.clone())
                        .password(s.password.expose_secret().to_string())
                        .source(s.auth_source.clone())
                        .build(),
                );
            }
            o
        }
    };
    opts.app_name = Some("tsp-job".into());
    opts.min_pool_size = Some(s.pool.min);
    opts.max_pool_size = Some(s.pool.max);
    opts.max_idle_time = Some(s.pool.max_idle);
    opts.server_selection_timeout = Some(s.server_selection_timeout);
    opts.connect_timeout = Some(s.connect_timeout);
    if s.tls.mode != TlsMode::Disabled {
        let mut tls = TlsOptions::default();
        tls.ca_file_path = s.tls.ca.clone();
        tls.cert_key_file_path = s.tls.cert.clone();
        tls.allow_invalid_certificates = Some(s.tls.mode == TlsMode::Required);
        opts.tls = Some(Tls::Enabled(tls));
    }
    let m = metrics.clone();
    opts.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| match ev {
        CommandEvent::Succeeded(e) => m.record_elapsed(&e.command_name, e.duration, true),
        CommandEvent::Failed(e) => m.record_elapsed(&e.command_name, e.duration, false),
        CommandEvent::Started(_) => {}
        _ => {}
    }));
    let p = pool.clone();
    opts.cmap_event_handler = Some(EventHandler::callback(move |ev: CmapEvent| match ev {
        CmapEvent::ConnectionCreated(_) => {
            p.open.fetch_add(1, Ordering::Relaxed);
        }
        CmapEvent::ConnectionClosed(_) => {
            p.open.fetch_sub(1, Ordering::Relaxed);
        }
        CmapEvent::ConnectionCheckedOut(_) => {
            p.checked_out.fetch_add(1, Ordering::Relaxed);
        }
        CmapEvent::ConnectionCheckedIn(_) => {
            p.checked_out.fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    }));
    Ok(opts)
}

fn kind_name(e: &mongodb::error::Error) -> &'static str {
    use mongodb::error::ErrorKind;
    match *e.kind {
        ErrorKind::InvalidArgument { .. } => "invalid argument",
        ErrorKind::DnsResolve { .. } => "DNS resolution failed",
        _ => "parse error",
    }
}

impl MongoStore {
    pub(crate) async fn new(
        s: &MongoSettings,
        redactor: Redactor,
        alarm: AuthAlarm,
    ) -> Result<Self, HubError> {
        let metrics = StoreMetrics::new(STORE, &s.name);
        let pool = Arc::new(PoolCounters::default());
        let opts = client_options(s, &metrics, &pool)
            .await
            .map_err(|message| HubError::Settings {
                store: STORE,
                instance: s.name.clone(),
                message,
            })?;
        // `with_options` does not touch the network: the driver connects in the background.
        let client = Client::with_options(opts).map_err(|e| HubError::Settings {
            store: STORE,
            instance: s.name.clone(),
            message: redactor.clean(e.to_string()),
        })?;
        Ok(MongoStore {
            settings: Arc::new(s.clone()),
            client: Shared::new(client),
            current: Shared::new(s.clone()),
            alarm,
            pool,
            version: Arc::new(OnceCell::new()),
            metrics,
            redactor,
        })
    }

    /// Replaces the credentials (username, password, uri) with `new`'s once a client with them
    /// answers `ping` within `timeout`; `Ok(false)` when they are the ones in use. Later
    /// operations use the new client; ones under way finish on the old one.
    pub(crate) async fn rotate(
        &self,
        new: &MongoSettings,
        timeout: Duration,
    ) -> Result<bool, HubError> {
        let old = self.current.get();
        let uri = |s: &MongoSettings| s.uri.as_ref().map(|u| u.expose_secret().to_string());
        if old.username == new.username
            && old.password.expose_secret() == new.password.expose_secret()
            && uri(&old) == uri(new)
        {
            return Ok(false);
        }
        let mut next = (*old).clone();
        next.username = new.username.clone();
        next.password = new.password.clone();
        next.uri = new.uri.clone();
        let settings_error = |message: String| HubError::Settings {
            store: STORE,
            instance: self.settings.name.clone(),
            message,
        };
        let opts = client_options(&next, &self.metrics, &self.pool)
            .await
            .map_err(settings_error)?;
        let client = Client::with_options(opts)
            .map_err(|e| settings_error(self.redactor.clean(e.to_string())))?;
        let admin = client.database("admin");
        let check = async {
            let ping = admin.run_command(doc! {"ping": 1}).await;
            ping.map_err(|e| self.describe("connect", &e))
        };
        crate::rotation::tried(STORE, &self.settings.name, timeout, check).await?;
        self.client.set(client);
        self.current.set(next);
        Ok(true)
    }

    /// The instance's configured name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Whether the service needs this instance to start.
    pub fn required(&self) -> bool {
        self.settings.required
    }

    /// The driver's client (it pools connections itself).
    pub fn client(&self) -> Client {
        (*self.client.get()).clone()
    }

    /// The configured database.
    pub fn database(&self) -> Database {
        self.client.get().database(&self.settings.database)
    }

    /// The name of the instance's database.
    pub fn database_name(&self) -> &str {
        &self.settings.database
    }

    /// The instance's command metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// Wraps a driver error from operation `op`, kept as the (redacted) cause.
    /// A refused login (code 18) also raises the hub's credential alarm.
    pub fn error(&self, op: &str, e: &mongodb::error::Error) -> HubError {
        let refused = match e.kind.as_ref() {
            ErrorKind::Authentication { .. } => true,
            ErrorKind::Command(c) => c.code == 18,
            _ => false,
        };
        if refused {
            self.alarm.raise();
        }
        self.describe(op, e)
    }

    fn describe(&self, op: &str, e: &mongodb::error::Error) -> HubError {
        let cause = Cause::new(e.clone(), &self.redactor);
        HubError::Store {
            store: STORE,
            instance: self.settings.name.clone(),
            op: op.to_string(),
            message: cause.text().to_string(),
            cause: Some(cause),
        }
    }

    /// Whether `e` is a write refused only for duplicate keys (code 11000), e.g. an unordered
    /// `insert_many` some of whose documents exist already.
    pub fn only_duplicates(e: &HubError) -> bool {
        Self::duplicate_positions(e).is_some()
    }

    /// When `e` is a write refused only for duplicate keys: the positions of the refused
    /// documents (an unordered `insert_many` inserted the others). `None` for any other error.
    pub fn duplicate_positions(e: &HubError) -> Option<Vec<usize>> {
        let driver = e
            .cause()
            .and_then(|c| c.downcast_ref::<mongodb::error::Error>())?;
        match driver.kind.as_ref() {
            ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => {
                let errors = m.write_errors.as_ref()?;
                (!errors.is_empty() && errors.iter().all(|w| w.code == 11000))
                    .then(|| errors.iter().map(|w| w.index).collect())
            }
            ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) if w.code == 11000 => {
                Some(vec![0])
            }
            _ => None,
        }
    }

    /// Creates `models` on `collection` (a no-op for indexes that exist with the same
    /// definition). An account refused index creation (code 13, an app account under least
    /// privilege, docs/store-security.md#least-privilege) is fine when every index exists already:
    /// `migrate` made them. Otherwise the error names the missing ones.
    #[boxed]
    pub async fn ensure_indexes(
        &self,
        collection: &str,
        models: Vec<mongodb::IndexModel>,
    ) -> Result<(), HubError> {
        let coll = self.database().collection::<Document>(collection);
        let names: Vec<String> = models.iter().map(index_name).collect();
        let refused = match self
            .timed_raw("create_indexes", coll.create_indexes(models))
            .await?
        {
            Ok(_) => return Ok(()),
            Err(e) if matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == 13) => e,
            Err(e) => return Err(self.error("create_indexes", &e)),
        };
        let existing = self
            .timed("list_index_names", coll.list_index_names())
            .await?;
        let missing: Vec<&String> = names.iter().filter(|n| !existing.contains(n)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut e = self.error("create_indexes", &refused);
        if let HubError::Store { message, .. } = &mut e {
            *message = format!(
                "{collection} lacks indexes {missing:?} and this account may not create them: run `tsp-job migrate` ({message})"
            );
        }
        Err(e)
    }

    /// Runs `fut` bounded by `socket_timeout`, with a secret-free error. (The driver already
    /// counts each command through command monitoring.)
    pub async fn timed<T, F>(&self, op: &str, fut: F) -> Result<T, HubError>
    where
        F: IntoFuture<Output = mongodb::error::Result<T>>,
    {
        use tracing::Instrument;
        let after = self.settings.socket_timeout;
        let fut = fut.into_future().instrument(self.metrics.span(op));
        match tokio::time::timeout(after, fut).await {
            Ok(r) => r.map_err(|e| self.error(op, &e)),
            Err(_) => Err(HubError::Timeout {
                store: STORE,
                instance: self.settings.name.clone(),
                op: op.to_string(),
                after,
            }),
        }
    }

    /// Inserts `docs` into `collection`: one `insert_many`, bounded like [`MongoStore::timed`].
    #[boxed]
    pub async fn insert_documents(
        &self,
        collection: &str,
        docs: &[mongodb::bson::Document],
    ) -> Result<(), HubError> {
        let coll = self
            .database()
            .collection::<mongodb::bson::Document>(collection);
        self.timed("insert_many", coll.insert_many(docs))
            .await
            .map(|_| ())
    }

    /// Like [`MongoStore::timed`], but hands back the driver's error (for callers that look
    /// into it, e.g. per-document write errors); only the timeout becomes a [`HubError`].
    pub async fn timed_raw<T, F>(
        &self,
        op: &str,
        fut: F,
    ) -> Result<mongodb::error::Result<T>, HubError>
    where
        F: IntoFuture<Output = mongodb::error::Result<T>>,
    {
        let after = self.settings.socket_timeout;
        tokio::time::timeout(after, fut.into_future())
            .await
            .map_err(|_| HubError::Timeout {
                store: STORE,
                instance: self.settings.name.clone(),
                op: op.to_string(),
                after,
            })
    }

    /// The driver's pool, as counted by its connection events.
    pub fn pool_stats(&self) -> PoolStats {
        let open = u32::try_from(self.pool.open.load(Ordering::Relaxed).max(0)).unwrap_or(0);
        let out = u32::try_from(self.pool.checked_out.load(Ordering::Relaxed).max(0)).unwrap_or(0);
        PoolStats {
            size: open,
            idle: open.saturating_sub(out),
            in_use: out.min(open),
            max: self.settings.pool.max,
        }
    }

    async fn run_admin(&self, command: Document) -> Result<Document, HubError> {
        let name = command.keys().next().cloned().unwrap_or_default();
        let admin = self.client.get().database("admin");
        self.timed(&name, admin.run_command(command)).await
    }

    /// `ping` (and `buildInfo` once, for the version), then a `findOne` on the migrations
    /// collection, each bounded (`health.timeout`, `health.read_timeout`; the read also asks the
    /// server to give up then, `maxTimeMS`). A server that answers pings but not queries shows
    /// as degraded.
    #[boxed]
    pub async fn health(&self, settings: &HealthSettings) -> InstanceHealth {
        let ping = async {
            self.run_admin(doc! {"ping": 1}).await?;
            let version = self
                .version
                .get_or_try_init(|| async {
                    let info = self.run_admin(doc! {"buildInfo": 1}).await?;
                    Ok::<_, HubError>(info.get_str("version").unwrap_or("unknown").to_string())
                })
                .await?;
            Ok::<_, HubError>(Some(version.clone()))
        };
        let read = async {
            let migrations = self
                .database()
                .collection::<Document>(MIGRATIONS_COLLECTION);
            let find = migrations.find_one(doc! {}).max_time(settings.read_timeout);
            self.timed("health", find).await.map(|_| None)
        };
        let who = (STORE, self.settings.name.as_str(), self.settings.required);
        let mut h = crate::health::check(who, settings, ping, (MIGRATIONS_COLLECTION, read)).await;
        metrics::gauge!(names::MONGO_CONNECTED, "store_instance" => self.settings.name.clone())
            .set(if h.status == Status::Up { 1.0 } else { 0.0 });
        h.pool = Some(self.pool_stats());
        h
    }
}

/// What happened to one document given to an [`InsertBatcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored now.
    New,
    /// A document with the same unique key (`_id` or a unique index) was there already.
    Duplicate,
}

type Waiting = (
    mongodb::bson::Document,
    tokio::sync::oneshot::Sender<Result<Inserted, HubError>>,
);

/// Group commit for one collection: concurrent callers each hand over a document and wait for
/// its outcome, while one task inserts whatever is waiting with one unordered `insert_many`.
/// A caller returns only once its document is stored (or refused), so nothing is acknowledged
/// early; round trips, and per-command server work, drop by the batch size.
#[derive(Clone)]
pub struct InsertBatcher {
    tx: tokio::sync::mpsc::Sender<Waiting>,
    store: String,
}

impl InsertBatcher {
    /// Starts the batching task for `collection` of `store`: up to `max_batch` documents per
    /// insert.
    pub fn start(store: MongoStore, collection: &str, max_batch: usize) -> InsertBatcher {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Waiting>(max_batch.max(1) * 4);
        let coll = store
            .database()
            .collection::<mongodb::bson::Document>(collection);
        let op = format!("insert {collection}");
        let name = store.name().to_string();
        let label = name.clone();
        tokio::spawn(async move {
            let mut batch: Vec<Waiting> = Vec::with_capacity(max_batch);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(w) => batch.push(w),
                        Err(_) => break,
                    }
                }
                let docs: Vec<&mongodb::bson::Document> = batch.iter().map(|(d, _)| d).collect();
                let outcome = store
                    .timed_raw(&op, coll.insert_many(docs).ordered(false))
                    .await;
                let mut results: Vec<Result<Inserted, HubError>> =
                    vec![Ok(Inserted::New); batch.len()];
                match outcome {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => match e.kind.as_ref() {
                        ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => {
                            for w in m.write_errors.iter().flatten() {
                                if let Some(r) = results.get_mut(w.index) {
                                    *r = if w.code == 11000 {
                                        Ok(Inserted::Duplicate)
                                    } else {
                                        Err(store.error(&op, &e))
                                    };
                                }
                            }
                        }
                        _ => {
                            let err = store.error(&op, &e);
                            results.iter_mut().for_each(|r| *r = Err(err.clone()));
                        }
                    },
                    Err(timeout) => results.iter_mut().for_each(|r| *r = Err(timeout.clone())),
                }
                for ((_, reply), r) in batch.drain(..).zip(results) {
                    let _ = reply.send(r);
                }
            }
            tracing::debug!(instance = %name, "insert batcher stopped");
        });
        InsertBatcher { tx, store: label }
    }

    /// Stores `doc` (in the next batch) and returns once it is stored.
    #[boxed]
    pub async fn insert(&self, doc: mongodb::bson::Document) -> Result<Inserted, HubError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let stopped =
            || HubError::store(STORE, &self.store, "insert", "the insert batcher stopped");
        self.tx.send((doc, reply)).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// An index's name: the one given, or MongoDB's default (`field_direction` joined by `_`).
fn index_name(model: &mongodb::IndexModel) -> String {
    if let Some(name) = model.options.as_ref().and_then(|o| o.name.clone()) {
        return name;
    }
    let parts: Vec<String> = model
        .keys
        .iter()
        .map(|(k, v)| match v {
            mongodb::bson::Bson::Int32(n) => format!("{k}_{n}"),
            mongodb::bson::Bson::Int64(n) => format!("{k}_{n}"),
            mongodb::bson::Bson::Double(n) => format!("{k}_{n}"),
            mongodb::bson::Bson::String(t) => format!("{k}_{t}"),
            other => format!("{k}_{other}"),
        })
        .collect();
    parts.join("_")
}
