//! The CyberVPN HTTP api: public routes under `/api/v1`, health, metrics and docs.
//!
//! Owns the actix-web application, its error model (RFC 7807), the request edge (request ids, metrics,
//! security headers) and the process lifecycle; business rules live in the domain and db crates.

mod auth;
mod business;
pub mod cli;
pub mod error;
mod grpc;
mod middleware;
mod openapi;
mod routes;
mod state;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use actix_cors::Cors;
use actix_web::{
    App, HttpServer,
    dev::{Server, ServerHandle},
    http::{Method, header},
    middleware::{Condition, from_fn},
    web,
};
use anyhow::Context as _;
use cybervpn_config::Config;
use cybervpn_db::Db;
use cybervpn_jobs::{JobMetrics, Queue};
use cybervpn_kv::Kv;
use cybervpn_telemetry::Metrics;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

pub use middleware::RequestId;
pub use openapi::openapi;

use crate::{error::ApiError, routes::RouteTable, state::AppState};

/// How long `GET /auth/me` may serve a profile from memory.
const PROFILE_TTL: Duration = Duration::from_secs(2);

/// How a process runs the api.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A separately deployed service: migrates only when told to.
    Service,
    /// The all-in-one binary: always brings the schema up to date.
    Standalone,
}

/// A built api bound to its listener, ready to run.
pub struct Api {
    server: Server,
    addr: SocketAddr,
    db: Db,
    config: Arc<Config>,
    queue: Option<Queue>,
    background: Option<Background>,
    grpc: Option<Grpc>,
    companion: Option<Background>,
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Stops a running api: live WebSockets get a Close frame (1001), then in-flight requests drain.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

impl StopHandle {
    /// Closes the staff WebSockets and stops the server (`graceful`: drain in-flight requests first).
    pub async fn stop(&self, graceful: bool) {
        let _ = self.stopping.send(true);
        self.server.stop(graceful).await;
    }
}

/// A service the standalone process runs beside the api once it is built (the Telegram bot).
pub type Companion = Box<
    dyn FnOnce(Embedded) -> futures_util::future::BoxFuture<'static, anyhow::Result<()>> + Send,
>;

/// What the api hands a [`Companion`].
pub struct Embedded {
    /// The configuration, with `grpc.url` pointing at this process's gRPC server.
    pub config: Arc<Config>,
    /// The in-process job queue.
    pub queue: Queue,
    /// Turns true when the process stops.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The internal gRPC server running beside the HTTP one.
struct Grpc {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Tasks running inside the standalone process (worker and scheduler, or a companion), stopped together.
struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Api {
    /// The address actually bound (useful with port 0).
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the gRPC server is bound to, when one runs (`grpc.bot_token` is set).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().map(|grpc| grpc.addr)
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            stopping: Arc::clone(&self.stopping),
        }
    }

    /// Starts `companion` beside the api when it can run: in standalone mode (the in-process queue) with the
    /// gRPC server up; it is stopped before the api's own tasks.
    pub fn start_companion(&mut self, companion: Companion) -> bool {
        let (Some(queue), Some(grpc), true) = (
            self.queue.clone(),
            self.grpc_addr(),
            self.background.is_some(),
        ) else {
            return false;
        };
        let mut config = (*self.config).clone();
        config.grpc.url = format!("http://{grpc}");
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let embedded = Embedded {
                config: Arc::new(config),
                queue,
                shutdown,
            };
            if let Err(err) = companion(embedded).await {
                tracing::error!(error = format!("{err:#}"), "in-process companion failed");
            }
        });
        self.companion = Some(Background {
            stop,
            tasks: vec![task],
        });
        true
    }

    /// Serves until the server is stopped, then closes the database pool.
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(companion) = self.companion {
            let _ = companion.stop.send(true);
            for task in companion.tasks {
                let _ = task.await;
            }
        }
        if let Some(grpc) = self.grpc {
            let _ = grpc.stop.send(true);
            let _ = grpc.task.await;
        }
        if let Some(background) = self.background {
            let _ = background.stop.send(true);
            for task in background.tasks {
                let _ = task.await;
            }
        }
        let _ = self.db.close().await;
        result
    }

    /// Serves until SIGINT or SIGTERM, then drains in-flight requests.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.handle();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received, draining requests");
            handle.stop(true).await;
        });
        self.run().await
    }
}

/// Builds the api on an already bound listener; migrates first in standalone mode or when configured.
pub async fn build(
    config: Arc<Config>,
    listener: std::net::TcpListener,
    mode: Mode,
) -> anyhow::Result<Api> {
    // Keys first: a misconfigured key fails before anything is touched.
    let (keys, secret_box) = auth::load_keys(&config, mode)?;
    let db = Db::connect(&config)
        .await
        .context("cannot connect to the database")?;
    if mode == Mode::Standalone || config.database.migrate {
        db.migrate().await.context("migrations failed")?;
    } else {
        let pending = db
            .pending_migrations()
            .await
            .context("cannot read migration state")?;
        anyhow::ensure!(
            pending.is_empty(),
            "the database schema is behind ({} pending migration(s), first {}): run `cybervpn-api migrate` \
             or start with --migrate",
            pending.len(),
            pending.first().map_or("?", String::as_str),
        );
    }
    let kv = config
        .redis
        .url
        .as_ref()
        .map(|url| {
            Kv::new(
                url.expose(),
                &config.redis.key_prefix,
                config.redis.pool_size,
            )
        })
        .transpose()
        .context("invalid Redis configuration")?;
    let metrics = Metrics::new().context("metrics registry")?;
    let hasher = password_hasher(&config)?;
    let store = kv
        .clone()
        .map_or_else(cybervpn_kv::Store::memory, cybervpn_kv::Store::Redis);
    let job_metrics = JobMetrics::register(metrics.registry()).context("job metrics")?;
    let queue = match (mode, &config.redis.url) {
        (Mode::Standalone, _) => Some(Queue::memory(job_metrics)),
        // Redis down at start must not keep the api down (`/ready` reports it); the dead-job views answer
        // 503 until a restart finds it.
        (Mode::Service, Some(url)) => {
            match Queue::redis(url.expose(), &config.redis.key_prefix, job_metrics).await {
                Ok(queue) => Some(queue),
                Err(err) => {
                    tracing::warn!(error = %err, "job queue unavailable at start");
                    None
                }
            }
        }
        (Mode::Service, None) => None,
    };
    let background = match (mode, &queue) {
        (Mode::Standalone, Some(queue)) => {
            Some(start_background(&config, &db, queue, &store, &metrics)?)
        }
        _ => None,
    };
    let panel = panel_client(&config, &metrics)?;
    let gateways =
        routes::payments::Gateways::from_config(&config.payments, &config.telegram, &metrics)?;
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let stopping = Arc::new(stopping);
    let state = web::Data::new(AppState {
        stopping: stopping_rx,
        db: db.clone(),
        kv,
        panel,
        gateways,
        queue: queue.clone(),
        business: business::BusinessMetrics::register(metrics.registry())
            .context("business metrics")?,
        events: cybervpn_kv::Events::listen(&store, cybervpn_domain::live::LIVE_CHANNEL),
        ws: routes::ws::WsMetrics::register(metrics.registry()).context("websocket metrics")?,
        metrics,
        plans: state::CachedBody::new(Duration::from_secs(config.api.plans_cache_ttl_secs)),
        auth: auth::AuthState {
            keys,
            // No entry outlives the tokens themselves; 4096 bounds memory to about 1 MiB.
            verified: state::TtlCache::new(
                Duration::from_secs(config.auth.access_token_ttl_secs),
                4096,
            ),
            secret_box,
            hasher: Arc::new(hasher),
            store,
            config: config.auth.clone(),
        },
        profiles: state::TtlCache::new(PROFILE_TTL, 4096),
        config: Arc::clone(&config),
    });
    let grpc = match &config.grpc.bot_token {
        Some(token) => {
            Some(start_grpc(&config.grpc.listen, state.clone(), token.expose().clone()).await?)
        }
        None => None,
    };
    let doc = openapi();
    let route_table = web::Data::new(RouteTable::from_openapi(&doc));

    let workers = match config.api.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let addr = listener.local_addr().context("listener address")?;
    let factory_config = Arc::clone(&config);
    let server = HttpServer::new(move || {
        let config = &factory_config;
        let body_limit = config.api.body_limit_bytes;
        // The docs go first: the `/api/v1` scope below would otherwise swallow `/api/v1/openapi.json`.
        let (app, _) = App::new()
            .service(SwaggerUi::new("/docs/{_:.*}").url("/api/v1/openapi.json", doc.clone()))
            .into_utoipa_app()
            .configure(routes::configure)
            .split_for_parts();
        app.app_data(state.clone())
            .app_data(route_table.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(body_limit)
                    .error_handler(|err, _| ApiError::from(err).into()),
            )
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(web::PathConfig::default().error_handler(|err, _| ApiError::from(err).into()))
            .app_data(
                web::QueryConfig::default().error_handler(|err, _| ApiError::from(err).into()),
            )
            .route(
                "/docs",
                web::get().to(|| async {
                    actix_web::HttpResponse::PermanentRedirect()
                        .insert_header((header::LOCATION, "/docs/"))
                        .finish()
                }),
            )
            .default_service(web::to(routes::fallback))
            .wrap(Condition::new(
                !config.api.cors_allowed_origins.is_empty(),
                cors(&config.api.cors_allowed_origins),
            ))
            .wrap(from_fn(middleware::edge))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(config.api.shutdown_timeout_secs)
    .listen(listener)
    .context("cannot listen")?
    .run();
    Ok(Api {
        server,
        addr,
        db,
        config,
        queue,
        background,
        grpc,
        companion: None,
        stopping,
    })
}

/// Binds `listen` and serves the internal gRPC API on it until the api stops.
async fn start_grpc(
    listen: &str,
    state: web::Data<AppState>,
    token: String,
) -> anyhow::Result<Grpc> {
    let (listener, addr) = grpc::bind(listen)
        .await
        .with_context(|| format!("cannot listen for gRPC on {listen}"))?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let task = tokio::spawn(async move {
        if let Err(err) = grpc::serve(state, listener, token, shutdown).await {
            tracing::error!(error = %err, "gRPC server failed");
        }
    });
    tracing::info!(%addr, "gRPC listening");
    Ok(Grpc { addr, stop, task })
}

fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            middleware::REQUEST_ID,
        ])
        .expose_headers([middleware::REQUEST_ID])
        .max_age(600)
}

/// Binds `config.api.listen`, builds the api (with `companion` beside it in standalone mode) and serves until
/// SIGINT/SIGTERM.
pub async fn serve(
    config: Arc<Config>,
    mode: Mode,
    companion: Option<Companion>,
) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(config.api.listen)
        .with_context(|| format!("cannot bind {}", config.api.listen))?;
    let mut api = build(config, listener, mode).await?;
    if let Some(companion) = companion
        && api.start_companion(companion)
    {
        tracing::info!("telegram bot running in-process");
    }
    tracing::info!(addr = %api.addr(), ?mode, "api listening");
    api.run_until_signalled().await.context("server error")
}

/// Applies pending migrations and exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = Db::connect(config)
        .await
        .context("cannot connect to the database")?;
    let pending = db.pending_migrations().await?;
    db.migrate().await.context("migrations failed")?;
    tracing::info!(applied = pending.len(), "database schema is up to date");
    db.close().await?;
    Ok(())
}

/// Creates a staff account with a generated password and returns the password (shown once, never stored).
pub async fn create_staff(
    config: &Config,
    mode: Mode,
    email: &str,
    role: &str,
    username: Option<&str>,
) -> anyhow::Result<String> {
    use cybervpn_domain::{Email, StaffRole, Username};

    let email = Email::parse(email)?;
    let role: StaffRole = role.parse()?;
    let username = match username {
        Some(name) => Username::parse(name)?,
        None => routes::auth::derive_username(&email).map_err(|err| anyhow::anyhow!("{err}"))?,
    };
    let db = Db::connect(config)
        .await
        .context("cannot connect to the database")?;
    if mode == Mode::Standalone || config.database.migrate {
        db.migrate().await.context("migrations failed")?;
    }
    let password = cybervpn_auth::generate_opaque_token();
    let hasher = password_hasher(config)?;
    let hash = hasher.hash(&cybervpn_auth::Password::for_login(&password)?)?;
    let account = db
        .staff()
        .create(email, username, role, hash, chrono::Utc::now())
        .await?;
    tracing::info!(staff_id = %account.id, role = %account.role, "staff account created");
    db.close().await?;
    Ok(password)
}

/// The panel client, when `remnawave.url` and `remnawave.token` are configured.
fn panel_client(
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<Option<cybervpn_remnawave::Panel>> {
    let (Some(url), Some(token)) = (&config.remnawave.url, &config.remnawave.token) else {
        return Ok(None);
    };
    let mut panel = cybervpn_remnawave::PanelConfig::new(url.clone(), token.expose().clone());
    panel.timeout = Duration::from_secs(config.remnawave.timeout_secs);
    panel.extra_headers = config
        .remnawave
        .extra_headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().clone()))
        .collect();
    Ok(Some(
        cybervpn_remnawave::Panel::new(panel, metrics.external.clone())
            .context("remnawave client")?,
    ))
}

/// The Argon2id hasher with the configured costs.
fn password_hasher(config: &Config) -> anyhow::Result<cybervpn_auth::PasswordHasher> {
    cybervpn_auth::PasswordHasher::with_params(
        config.auth.argon2_memory_kib,
        config.auth.argon2_iterations,
        config.auth.argon2_parallelism,
    )
    .map_err(|err| anyhow::anyhow!("invalid Argon2id parameters in `auth`: {err}"))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub use cybervpn_telemetry::shutdown_signal;

/// Starts the worker and the scheduler in this process on the in-process queue and store (standalone).
fn start_background(
    config: &Arc<Config>,
    db: &Db,
    queue: &Queue,
    store: &cybervpn_kv::Store,
    metrics: &Metrics,
) -> anyhow::Result<Background> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let services = cybervpn_worker::Services::new(
        Arc::clone(config),
        db.clone(),
        queue.clone(),
        store.clone(),
        metrics,
    )?;
    let scheduler = cybervpn_scheduler::Scheduler::new(
        config,
        store.clone(),
        queue.clone(),
        metrics,
        cybervpn_scheduler::holder_id(),
    )?;
    let worker_stop = until_stopped();
    let worker = tokio::spawn(async move {
        if let Err(err) = services.check_panel().await {
            tracing::error!(
                error = format!("{err:#}"),
                "panel refused; the in-process worker is off"
            );
            return;
        }
        if let Err(err) = cybervpn_worker::start(services, worker_stop).await {
            tracing::error!(error = format!("{err:#}"), "in-process worker failed");
        }
    });
    let scheduler = tokio::spawn(scheduler.run(until_stopped()));
    Ok(Background {
        stop,
        tasks: vec![worker, scheduler],
    })
}
