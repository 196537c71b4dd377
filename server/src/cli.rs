//! Command-line interface. Every flag has a long name, an environment variable where it makes
//! sense, a default, and a doc comment that is its `--help` text.
#![allow(clippy::print_stdout, clippy::print_stderr)] // The CLI's output is its product.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::{parse_size, store_options};

/// Tessera: astronomical catalogs as HEALPix-partitioned Parquet (HATS), served over IVOA
/// protocols.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    /// More logging (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a data root over HTTP (the default command). Without --data, builds the demo
    /// archive (real Hipparcos stars) into ./tessera-data on first run.
    Serve(ServeArgs),
    /// Load catalog files into a HATS catalog at ROOT/<schema>/<table>.
    Load(Box<LoadArgs>),
    /// Describe a catalog: partitions, orders, rows, columns and their metadata.
    Info(InfoArgs),
    /// Run an ADQL query and print the result; with --check, only check its syntax.
    Query(QueryArgs),
    /// Register FITS images and cubes (files or directories) in ivoa.ObsCore of a data root.
    LoadImages(LoadImagesArgs),
    /// HiPS (Hierarchical Progressive Surveys): build image HiPS and catalogue tile stores.
    #[command(subcommand)]
    Hips(HipsCommand),
}

/// `tessera hips …`.
#[derive(Debug, Subcommand)]
pub enum HipsCommand {
    /// Build an image HiPS (FITS/PNG/JPEG tiles, Allsky, Moc.fits, properties) from the FITS
    /// images registered in a collection, as Aladin's Hipsgen does; published atomically.
    Build(HipsBuildArgs),
    /// Build (or rebuild) the catalogue HiPS tile store of catalogs, as `tessera load` does
    /// after loading: needed for catalogs over `tessera serve --hips-max-rows` loaded with
    /// --no-hips or by another tool (hats-import), or to rank the rows by another column.
    Index(HipsIndexArgs),
}

/// `tessera hips index`.
#[derive(Debug, Args)]
pub struct HipsIndexArgs {
    /// The data root: a directory, file:// or s3:// URL.
    #[arg(long, env = "TESSERA_DATA")]
    pub data: String,
    /// The catalogs, as schema.table (default: every catalog with position columns).
    #[arg(long)]
    pub catalog: Vec<String>,
    /// The numeric column ranking the rows, smallest first (default: the magnitude column,
    /// else a stable pseudo-random order).
    #[arg(long)]
    pub rank: Option<String>,
    /// Where the stores go, one directory per catalog (default: ROOT/.tessera/hips, where
    /// `tessera serve` looks with its default --state-dir; for an s3:// root give the
    /// server's `<state dir>/hips`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tessera hips build`.
#[derive(Debug, Args)]
pub struct HipsBuildArgs {
    /// The data root whose image registry (ROOT/.tessera/obscore.parquet) lists the images.
    #[arg(long, env = "TESSERA_DATA")]
    pub data: PathBuf,
    /// The ObsCore collection (obs_collection) whose images make the HiPS.
    #[arg(long)]
    pub collection: String,
    /// The HiPS directory; its name is the HiPS id (default: ROOT/hips/<collection>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tile formats, comma-separated: fits, png, jpeg.
    #[arg(long, default_value = "fits,png")]
    pub format: String,
    /// PNG/JPEG transfer function: linear, sqrt, log or asinh.
    #[arg(long, default_value = "linear")]
    pub stretch: String,
    /// PNG/JPEG pixel cut MIN,MAX in data units (default: the 0.5 and 99.9 percentiles of
    /// the input pixels).
    #[arg(long, allow_hyphen_values = true)]
    pub cut: Option<String>,
    /// Deepest HiPS order (3-20; default: from the finest input pixel scale, as Hipsgen).
    #[arg(long)]
    pub order: Option<u8>,
    /// obs_title of the HiPS (default: "<collection> (Tessera image HiPS)").
    #[arg(long)]
    pub title: Option<String>,
    /// creator_did of the HiPS (default: ivo://tessera/P/<id>).
    #[arg(long)]
    pub creator_did: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `tessera load-images`.
#[derive(Debug, Args)]
pub struct LoadImagesArgs {
    /// FITS files, or directories searched for .fits/.fit/.fts files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The data root (a local directory); the files are copied under ROOT/images/<collection>/.
    #[arg(long, env = "TESSERA_DATA")]
    pub data: PathBuf,
    /// ObsCore obs_collection.
    #[arg(long, default_value = "images")]
    pub collection: String,
    /// Report bad files and register the others (default: a bad file stops the registration
    /// before anything is registered).
    #[arg(long)]
    pub skip_bad: bool,
    /// ObsCore calib_level of the datasets.
    #[arg(long, default_value_t = 2)]
    pub calib_level: i32,
}

/// Object-store flags shared by the subcommands.
#[derive(Debug, Args, Default)]
pub struct StoreArgs {
    /// S3-compatible endpoint URL for s3:// locations (else AWS_ENDPOINT_URL).
    #[arg(long, env = "TESSERA_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (else AWS_REGION, else us-east-1).
    #[arg(long, env = "TESSERA_S3_REGION")]
    pub s3_region: Option<String>,
}

/// `tessera serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data root: a directory, file:// or s3:// URL holding <schema>/<table>/ catalogs.
    #[arg(long, env = "TESSERA_DATA")]
    pub data: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The URL clients reach this server at (for absolute links in ObsCore `access_url`,
    /// DataLink and job documents behind a proxy); default `http://<listen address>`.
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Where the service keeps its state (the UWS job database, uploads, spool files);
    /// default `<data root>/.tessera` for a local data root. Required for s3:// roots.
    #[arg(long, env = "TESSERA_STATE")]
    pub state_dir: Option<PathBuf>,
    /// Memory all running queries may hold together, e.g. 4G (sorts, aggregates and joins
    /// spill to disk beyond their share).
    #[arg(long, value_parser = parse_size_arg)]
    pub memory_limit: Option<u64>,
    /// Rows a TAP query returns when it gives no MAXREC.
    #[arg(long, default_value_t = 100_000)]
    pub maxrec_default: u64,
    /// Rows a TAP query returns at most, whatever its MAXREC.
    #[arg(long, default_value_t = 100_000_000)]
    pub maxrec_hard: u64,
    /// Wall-clock limit of a synchronous query, in seconds.
    #[arg(long, default_value_t = 600)]
    pub sync_timeout: u64,
    /// Bytes of one uploaded table at most (e.g. 256M).
    #[arg(long, value_parser = parse_size_arg, default_value = "256M")]
    pub upload_limit: u64,
    /// Rows of one uploaded table at most.
    #[arg(long, default_value_t = 1_000_000)]
    pub upload_max_rows: u64,
    /// Whether UPLOAD=name,http://… is accepted (the server fetches the URL; TAPRegExt
    /// makes upload-http mandatory for a service that takes uploads). `false` on servers
    /// that can reach hosts the public must not.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub upload_urls: bool,
    /// Catalogues with more rows get no catalogue HiPS tile store built on the first request
    /// (`tessera load` and `tessera hips index` build it for any size).
    #[arg(long, env = "TESSERA_HIPS_MAX_ROWS", default_value_t = 5_000_000)]
    pub hips_max_rows: u64,
    /// Where the npm package aladin-lite (3.8.2) is installed for the /viewer page: an npm
    /// prefix (`npm install --prefix DIR aladin-lite@3.8.2`) or the package directory.
    /// Default: ~/.cache/tessera-web when it holds it (tools/install-test-deps installs it
    /// there); without it the page loads Aladin Lite from CDS.
    #[arg(long, env = "TESSERA_ALADIN_LITE")]
    pub aladin_lite: Option<PathBuf>,
    /// Async jobs executing at once.
    #[arg(long, default_value_t = 2)]
    pub max_running_jobs: usize,
    /// Async jobs waiting in the queue at most.
    #[arg(long, default_value_t = 100)]
    pub max_queued_jobs: usize,
    /// Default execution duration of an async job, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub job_duration: u64,
    /// Longest execution duration a job may ask for, in seconds.
    #[arg(long, default_value_t = 4 * 3600)]
    pub job_duration_max: u64,
    /// How long jobs and their results are kept by default, in seconds.
    #[arg(long, default_value_t = 7 * 86400)]
    pub job_retention: u64,
    /// Longest a job may ask to be kept, in seconds.
    #[arg(long, default_value_t = 30 * 86400)]
    pub job_retention_max: u64,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    crate::config::parse_size(s)
}

/// `tessera load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Input files (CSV/TSV, Parquet, FITS binary table, VOTable, CDS fixed-width .dat; .zst
    /// compressed text is read directly). All must have the same columns.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Target catalog: ROOT/<schema>/<table> as a path, file://, or s3:// URL.
    #[arg(long)]
    pub catalog: String,
    /// Do not build the catalogue HiPS tile store after loading (`tessera serve` then builds
    /// it on the first HiPS request, for catalogs under its --hips-max-rows).
    #[arg(long)]
    pub no_hips: bool,
    /// The numeric column ranking the catalogue HiPS rows, smallest first (the brightest
    /// magnitude); default: the column with a `phot.mag` UCD or a magnitude-like name, else a
    /// stable pseudo-random order.
    #[arg(long)]
    pub hips_rank: Option<String>,
    /// Input format (csv, tsv, parquet, fits, votable, cds); guessed from the file name.
    #[arg(long)]
    pub format: Option<String>,
    /// RA column (found by UCD pos.eq.ra or common names otherwise). Radians and hours are
    /// converted by the column's unit.
    #[arg(long)]
    pub ra: Option<String>,
    /// Dec column (found by UCD pos.eq.dec or common names otherwise).
    #[arg(long)]
    pub dec: Option<String>,
    /// Maximum rows per partition (hats-import's pixel_threshold).
    #[arg(long, default_value_t = 1_000_000)]
    pub pixel_threshold: u64,
    /// Mapping order: histogram and skymap order, and the deepest partition order.
    #[arg(long, default_value_t = 10)]
    pub highest_order: u8,
    /// Shallowest partition order.
    #[arg(long, default_value_t = 0)]
    pub lowest_order: u8,
    /// Partition top-down (first ancestor under the threshold) instead of hats-import's
    /// default drop-empty-siblings rule.
    #[arg(long)]
    pub keep_empty_siblings: bool,
    /// Memory budget for buffering, sorting and writing (e.g. 512M, 4G); beyond it rows spill
    /// to scratch files.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub memory_limit: u64,
    /// Skip and report up to N malformed rows instead of failing on the first.
    #[arg(long, default_value_t = 0)]
    pub skip_bad_rows: u64,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 65_536)]
    pub row_group_rows: usize,
    /// Rows per Parquet data page at most (the page index prunes small cones to these).
    #[arg(long, default_value_t = 1024)]
    pub page_rows: usize,
    /// Page compression of the leaves: lz4 (fast to write and read), zstd (smallest files,
    /// with --zstd-level), snappy or none.
    #[arg(long, default_value = "lz4")]
    pub compression: tessera_loader::LeafCodec,
    /// ZSTD compression level, with --compression zstd (hats-import uses 15).
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,
    /// Do not write the legacy `properties` copy of hats.properties (needed only by hats < 0.5;
    /// omit it where a HiPS `properties` file will share the directory).
    #[arg(long)]
    pub no_legacy_properties: bool,
    /// Secondary sort columns after _healpix_29, comma-separated (hats_cols_sort).
    #[arg(long, value_delimiter = ',')]
    pub sort_columns: Vec<String>,
    /// Column types for text inputs, e.g. `id=int64,flag=string` (int64, double, boolean,
    /// string); the rest are inferred from the first rows.
    #[arg(long, value_delimiter = ',')]
    pub column_types: Vec<String>,
    /// Field delimiter for text inputs (`,` or `\t`; default by extension and header).
    #[arg(long)]
    pub delimiter: Option<String>,
    /// CDS ReadMe describing fixed-width inputs (default: ReadMe next to the input).
    #[arg(long)]
    pub readme: Option<PathBuf>,
    /// Scratch directory for spill files (default: the system temp directory).
    #[arg(long, env = "TESSERA_SCRATCH")]
    pub scratch: Option<PathBuf>,
    /// Never draw the progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tessera info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The catalog: path, file:// or s3:// URL.
    pub catalog: String,
    /// Also read every row and print an order-independent checksum of all values.
    #[arg(long)]
    pub checksum: bool,
    /// Columns for --checksum (default: all but _healpix_29).
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tessera query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The ADQL query (`-` reads it from standard input).
    pub adql: String,
    /// Data root (default: the demo archive in ./tessera-data, built on first use).
    #[arg(long, env = "TESSERA_DATA")]
    pub data: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::query_cli::OutputFormat,
    /// Only check the syntax (no data needed): exit 0 when valid, 1 with the error position
    /// when not.
    #[arg(long)]
    pub check: bool,
    /// Print at most this many rows (more rows are reported as an overflow).
    #[arg(long)]
    pub max_rows: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Memory the query's sorts, aggregates and joins may hold together (e.g. 256M, 4G):
    /// sorts and aggregates spill to scratch files beyond it, and a query that cannot fit
    /// fails with a limit error. Default: no limit.
    #[arg(long, value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Scratch directory for spill files (default: the system temp directory).
    #[arg(long, env = "TESSERA_SCRATCH")]
    pub scratch: Option<PathBuf>,
    /// Print the SQL the query translates to instead of running it.
    #[arg(long)]
    pub explain: bool,
    /// Run the query and print DataFusion's plan with its metrics (partitions read, row
    /// groups and pages pruned, rows) instead of the rows.
    #[arg(long)]
    pub analyze: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Installs the log subscriber (stderr; `RUST_LOG` overrides the verbosity flag).
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // No subcommand: `serve` with its defaults (and environment variables).
    let command = match cli.command {
        Some(c) => c,
        None => <Cli as clap::Parser>::try_parse_from(["tessera", "serve"])?
            .command
            .context("no default command")?,
    };
    match command {
        Command::Serve(a) => serve(a),
        Command::Load(a) => load(*a),
        Command::Info(a) => info(a),
        Command::Query(a) => query(a),
        Command::LoadImages(a) => load_images(a),
        Command::Hips(HipsCommand::Build(a)) => hips_build(a),
        Command::Hips(HipsCommand::Index(a)) => hips_index(a),
    }
}

/// A query the engine rejected: printed as is, exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{kind} error: {error}")]
pub struct QueryFailed {
    /// The error's kind (`syntax`, `unknown_column`, …).
    pub kind: &'static str,
    /// The engine's error.
    pub error: tessera_engine::Error,
}

fn query(a: QueryArgs) -> anyhow::Result<()> {
    let adql = if a.adql == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the query from stdin")?;
        s
    } else {
        a.adql.clone()
    };
    let failed = |e: tessera_engine::Error| QueryFailed {
        kind: e.kind().as_str(),
        error: e,
    };
    let limits = tessera_engine::Limits {
        max_rows: a.max_rows,
        timeout: a.timeout.map(std::time::Duration::from_secs_f64),
        ..Default::default()
    };
    if a.check {
        tessera_engine::Engine::check(&adql, &limits.parse).map_err(failed)?;
        println!("ok");
        return Ok(());
    }
    let store = store_options(a.store.s3_endpoint, a.store.s3_region);
    let data = data_or_demo(a.data)?;
    let root = tessera_engine::Location::parse(&data, &store)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let opts = tessera_engine::EngineOptions {
            memory_limit: a
                .memory_limit
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            spill_dir: a.scratch.clone(),
            ..Default::default()
        };
        let engine = tessera_engine::Engine::open_with(root, &opts)
            .await
            .with_context(|| format!("opening data root {data}"))?;
        if a.analyze {
            print!(
                "{}",
                engine
                    .explain_analyze(&adql, &limits)
                    .await
                    .map_err(failed)?
            );
            return Ok(());
        }
        if a.explain {
            println!(
                "{}",
                engine.translate(&adql, &limits.parse).map_err(failed)?
            );
            return Ok(());
        }
        let result = engine.query(&adql, &limits).await.map_err(failed)?;
        let schema = result.schema();
        let (batches, overflow) = result.collect().await.map_err(failed)?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        crate::query_cli::print(&mut out, a.format, &schema, &batches, overflow)?;
        out.flush()?;
        Ok(())
    })
}

/// The `--data` root, or the demo archive in ./tessera-data (built on first use; the note
/// goes to stderr so that query output on stdout stays clean).
fn data_or_demo(data: Option<String>) -> anyhow::Result<String> {
    match data {
        Some(d) => Ok(d),
        None => {
            let root = PathBuf::from("tessera-data");
            if crate::demo::ensure_demo(&root)? {
                eprintln!("Built the demo archive in {}", root.display());
            }
            Ok(root.display().to_string())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let store = store_options(a.store.s3_endpoint.clone(), a.store.s3_region.clone());
    let data = data_or_demo(a.data.clone())?;
    let root = tessera_engine::Location::parse(&data, &store)?;
    let state_dir = match (&a.state_dir, &root.local_dir) {
        (Some(d), _) => d.clone(),
        (None, Some(local)) => local.join(".tessera"),
        (None, None) => anyhow::bail!(
            "--state-dir is required when the data root ({data}) is not a local directory: \
             the job database must live on a local disk"
        ),
    };
    let spool = state_dir.join("spool");
    std::fs::create_dir_all(&spool)
        .with_context(|| format!("creating the state directory {}", spool.display()))?;
    // Spool files of a previous run (a crash leaves them) are of no use now.
    if let Ok(entries) = std::fs::read_dir(&spool) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("binding {}", a.listen))?;
        let addr = listener.local_addr()?;
        let public_url = a
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let (images, obscore) =
            crate::images::ImageIndex::load(root.local_dir.as_deref(), &public_url)
                .context("reading the ObsCore registry of the data root")?;
        let archive = tessera_engine::Archive::open(root.clone())
            .await
            .with_context(|| format!("opening data root {data}"))?;
        let n_catalogs = archive.catalogs().len();
        let n_images = images.by_did.len();
        let engine = tessera_engine::Engine::from_archive(
            archive,
            &tessera_engine::EngineOptions {
                memory_limit: a
                    .memory_limit
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                spill_dir: Some(spool.clone()),
                extra_tables: obscore.into_iter().collect(),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("opening data root {data}"))?;
        let mut config = crate::tap::TapConfig::with_spool_dir(spool.clone());
        config.max_rec_default = a.maxrec_default.min(a.maxrec_hard);
        config.max_rec_hard = a.maxrec_hard;
        config.sync_timeout = std::time::Duration::from_secs(a.sync_timeout.max(1));
        config.params.max_upload_bytes = a.upload_limit;
        config.upload.max_bytes = a.upload_limit;
        config.upload.max_rows = a.upload_max_rows;
        config.upload.allow_urls = a.upload_urls;
        config.hips_max_rows = a.hips_max_rows;
        let jobs = crate::tap::JobSettings {
            state_dir: state_dir.clone(),
            results: root.child(".tessera/results"),
            max_running: a.max_running_jobs.max(1),
            max_queued: a.max_queued_jobs,
            duration_default: std::time::Duration::from_secs(a.job_duration),
            duration_max: std::time::Duration::from_secs(a.job_duration_max.max(a.job_duration)),
            retention_default: std::time::Duration::from_secs(a.job_retention),
            retention_max: std::time::Duration::from_secs(a.job_retention_max.max(a.job_retention)),
        };
        let (tap, extra) = crate::tap::start(engine, config, jobs, images).await?;
        println!("Tessera serving {n_catalogs} catalog(s) and {n_images} image(s) from {data}");
        println!("  home:   http://{addr}/");
        println!("  TAP:    http://{addr}/tap");
        println!("  health: http://{addr}/health");
        println!("  viewer: http://{addr}/viewer");
        let aladin = crate::config::aladin_lite_script(a.aladin_lite.as_deref());
        let state = crate::routes::AppState::new(tap).with_aladin_lite(aladin);
        let app = crate::routes::app(state, extra);
        // Without TCP_NODELAY a keep-alive client waited ~40 ms for each response's last
        // segment (Nagle against delayed ACKs): 42 ms per small cone instead of 0.7 ms.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving HTTP")
    })
}

fn load_images(a: LoadImagesArgs) -> anyhow::Result<()> {
    let opts = tessera_loader::images::ImageLoadOptions {
        inputs: a.inputs,
        root: a.data,
        collection: a.collection,
        skip_bad: a.skip_bad,
        calib_level: a.calib_level,
    };
    let report = tessera_loader::images::load_images(&opts)?;
    for (file, why) in &report.skipped {
        eprintln!("skipped {}: {why}", file.display());
    }
    println!(
        "registered {} dataset(s); ivoa.ObsCore now holds {}",
        report.registered, report.total
    );
    Ok(())
}

fn hips_index(a: HipsIndexArgs) -> anyhow::Result<()> {
    let store = store_options(a.store.s3_endpoint.clone(), a.store.s3_region.clone());
    let root = tessera_engine::Location::parse(&a.data, &store)?;
    let out = match (&a.out, &root.local_dir) {
        (Some(o), _) => o.clone(),
        (None, Some(local)) => local.join(".tessera").join("hips"),
        (None, None) => bail!(
            "--out is required when the data root ({}) is not a local directory",
            a.data
        ),
    };
    let rt = runtime()?;
    let archive = rt.block_on(tessera_engine::Archive::open(root))?;
    let mut chosen = Vec::new();
    for name in &a.catalog {
        let c = archive
            .catalogs()
            .iter()
            .find(|c| c.qualified_name().eq_ignore_ascii_case(name))
            .with_context(|| format!("no catalog {name} in {}", a.data))?;
        chosen.push(c);
    }
    if a.catalog.is_empty() {
        chosen.extend(
            archive
                .catalogs()
                .iter()
                .filter(|c| c.ra_dec.0.is_some() && c.ra_dec.1.is_some()),
        );
    }
    if chosen.is_empty() {
        bail!("no catalog with position columns in {}", a.data);
    }
    for c in chosen {
        let dir = out.join(c.qualified_name());
        let line = rt.block_on(crate::hips::build_store(
            &c.location,
            &c.schema,
            &c.table,
            a.rank.as_deref(),
            &dir,
        ))?;
        println!("{line}");
    }
    Ok(())
}

fn hips_build(a: HipsBuildArgs) -> anyhow::Result<()> {
    use tessera_loader::hips::{HipsBuildOptions, Stretch, TileFormat};
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.data.join("hips").join(&a.collection));
    let mut opts = HipsBuildOptions::new(&a.data, &a.collection, out);
    opts.formats = TileFormat::parse_list(&a.format)?;
    opts.stretch = Stretch::parse(&a.stretch).with_context(|| {
        format!(
            "--stretch {}: expected linear, sqrt, log or asinh",
            a.stretch
        )
    })?;
    if let Some(c) = &a.cut {
        let parsed = c.split_once(',').and_then(|(lo, hi)| {
            Some((
                lo.trim().parse::<f64>().ok()?,
                hi.trim().parse::<f64>().ok()?,
            ))
        });
        opts.cut = Some(parsed.with_context(|| format!("--cut {c}: expected MIN,MAX"))?);
    }
    opts.order = a.order;
    opts.title = a.title;
    opts.creator_did = a.creator_did;
    opts.progress = !a.quiet;
    let report = tessera_loader::hips::build_image_hips(&opts)?;
    for w in &report.warnings {
        eprintln!("note: {w}");
    }
    println!(
        "built image HiPS {} from {} image(s) ({:.1} Mpixel): order {}, {} tiles ({} at order {}), cut {} {}, sky fraction {:.3e}, in {:.1} s",
        report.out.display(),
        report.images,
        report.input_pixels as f64 / 1e6,
        report.order,
        report.tiles.iter().sum::<usize>(),
        report.tiles.last().copied().unwrap_or(0),
        report.order,
        report.cut.0,
        report.cut.1,
        report.sky_fraction,
        report.seconds
    );
    Ok(())
}

fn load(a: LoadArgs) -> anyhow::Result<()> {
    let format = match &a.format {
        Some(f) => Some(tessera_loader::Format::parse(f).with_context(|| {
            format!("unknown --format {f}; use csv, tsv, parquet, fits, votable or cds")
        })?),
        None => None,
    };
    let mut column_types = Vec::new();
    for spec in &a.column_types {
        let (name, ty) = spec
            .split_once('=')
            .with_context(|| format!("--column-types: expected name=type, got `{spec}`"))?;
        let dt = tessera_loader::read::csv::parse_type_name(ty).with_context(|| {
            format!("--column-types: unknown type `{ty}` (int64, double, boolean, string)")
        })?;
        column_types.push((name.to_string(), dt));
    }
    let delimiter = match a.delimiter.as_deref() {
        None => None,
        Some("\\t") | Some("\t") | Some("tab") => Some(b'\t'),
        Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
        Some(d) => bail!("--delimiter must be one character or \\t, got `{d}`"),
    };
    let hips_location = if a.no_hips {
        None
    } else {
        Some(tessera_engine::Location::parse(
            &a.catalog,
            &store_options(a.store.s3_endpoint.clone(), a.store.s3_region.clone()),
        )?)
    };
    let opts = tessera_loader::LoadOptions {
        inputs: a.inputs,
        catalog: a.catalog.clone(),
        store: store_options(a.store.s3_endpoint, a.store.s3_region),
        format,
        ra: a.ra,
        dec: a.dec,
        plan: tessera_loader::PlanSettings {
            threshold: a.pixel_threshold,
            lowest_order: a.lowest_order,
            drop_empty_siblings: !a.keep_empty_siblings,
        },
        highest_order: a.highest_order,
        memory_limit: a.memory_limit,
        skip_bad_rows: a.skip_bad_rows,
        leaf: tessera_loader::LeafSettings {
            row_group_rows: a.row_group_rows,
            page_rows: a.page_rows,
            codec: a.compression,
            zstd_level: a.zstd_level,
            sort_columns: a.sort_columns,
            legacy_properties: !a.no_legacy_properties,
        },
        read: tessera_loader::ReadOptions {
            column_types,
            delimiter,
            readme: a.readme,
            ..Default::default()
        },
        progress: !a.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        scratch: a.scratch,
    };
    let t = std::time::Instant::now();
    let r = tessera_loader::load(&opts)?;
    let secs = t.elapsed().as_secs_f64();
    for b in &r.bad_rows {
        println!("skipped: {b}");
    }
    println!(
        "loaded {} rows into {} ({} partitions, deepest order {}) in {:.2} s: {:.0} rows/s",
        r.rows,
        a.catalog,
        r.partitions,
        r.max_order,
        secs,
        r.rows as f64 / secs.max(1e-9)
    );
    println!(
        "  passes: histogram {:.2} s, scatter {:.2} s, sort+write {:.2} s, publish {:.2} s; spilled {} MiB, {} partition(s) merged from sorted runs; RA/Dec columns {}, {}",
        r.seconds[0],
        r.seconds[1],
        r.seconds[2],
        r.seconds[3],
        r.spilled_bytes >> 20,
        r.merged_partitions,
        r.ra_dec.0,
        r.ra_dec.1
    );
    if !r.bad_rows.is_empty() {
        println!("  {} malformed row(s) skipped", r.bad_rows.len());
    }
    if let Some(loc) = hips_location {
        hips_after_load(&loc, a.hips_rank.as_deref())?;
    }
    Ok(())
}

/// Builds the catalogue HiPS tile store of a catalog just loaded, so that `tessera serve`
/// serves its tiles at once whatever its size.
fn hips_after_load(loc: &tessera_engine::Location, rank: Option<&str>) -> anyhow::Result<()> {
    let parts = loc.local_dir.as_deref().and_then(|d| {
        let parent = d.parent()?;
        Some((
            parent.parent()?.to_path_buf(),
            parent.file_name()?.to_str()?.to_string(),
            d.file_name()?.to_str()?.to_string(),
        ))
    });
    let Some((root, schema, table)) = parts else {
        println!(
            "  HiPS: {} is not on a local disk; `tessera serve` builds its tile store on the first request",
            loc.url
        );
        return Ok(());
    };
    let dir = crate::hips::root_store_dir(&root, &schema, &table);
    let line = runtime()?
        .block_on(crate::hips::build_store(loc, &schema, &table, rank, &dir))
        .context("the catalog is loaded and published, but its HiPS tile store is not (rerun with `tessera hips index`)")?;
    println!("  {line}");
    Ok(())
}

fn info(a: InfoArgs) -> anyhow::Result<()> {
    let store = store_options(a.store.s3_endpoint, a.store.s3_region);
    let loc = tessera_engine::Location::parse(&a.catalog, &store)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let cat = tessera_engine::Catalog::open(&loc)
            .await
            .with_context(|| format!("opening {}", a.catalog))?;
        let name = loc
            .prefix
            .filename()
            .map(str::to_string)
            .unwrap_or_default();
        let d = tessera_engine::CatalogInfo::describe("", &name, &cat);
        println!("catalog:    {}", loc.url);
        println!("rows:       {}", d.rows);
        println!("partitions: {}", d.partitions);
        let orders: Vec<String> = d.orders.iter().map(|(o, n)| format!("{o}:{n}")).collect();
        println!("orders:     {} (order:partitions)", orders.join(" "));
        println!(
            "ra/dec:     {} / {}",
            d.ra_dec.0.as_deref().unwrap_or("?"),
            d.ra_dec.1.as_deref().unwrap_or("?")
        );
        println!("properties:");
        for (k, v) in cat.properties.entries() {
            println!("  {k}={v}");
        }
        println!("columns:");
        for c in &d.columns {
            let mut extra = Vec::new();
            if let Some(u) = &c.meta.unit {
                extra.push(format!("unit={u}"));
            }
            if let Some(u) = &c.meta.ucd {
                extra.push(format!("ucd={u}"));
            }
            if let Some(u) = &c.meta.description {
                extra.push(format!("\"{u}\""));
            }
            println!("  {:<16} {:<10} {}", c.name, c.data_type, extra.join(" "));
        }
        if a.checksum {
            let cols = (!a.columns.is_empty()).then(|| a.columns.clone());
            let sum = tessera_loader::checksum::catalog_checksum(&cat, cols).await?;
            println!("checksum:   {}", sum.digest());
        }
        Ok(())
    })
}
