//! The `tessera` binary: `serve`, `load` and `info`.

/// Makes glibc's allocator give memory back: by default it raises its mmap threshold after
/// freeing large blocks and keeps one arena per thread, so the loader's freed Arrow buffers
/// stayed resident and peak RSS overshot `--memory-limit` by up to 60 % (measured at 512M).
/// With a fixed 1 MiB mmap threshold, buffers that size or larger go straight back to the
/// system on free; two arenas and a 16 MiB trim threshold bound the rest. Environment
/// variables (`MALLOC_ARENA_MAX`, …) still override, as glibc reads them first.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str, param: libc::c_int, value: libc::c_int| {
            if std::env::var_os(name).is_none() {
                // SAFETY: mallopt only adjusts allocator parameters; it is called before any
                // thread exists.
                unsafe {
                    libc::mallopt(param, value);
                }
            }
        };
        set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 1 << 20);
        set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 16 << 20);
        set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2);
    }
}

use clap::Parser;

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = tessera_server::cli::Cli::parse();
    tessera_server::cli::init_tracing(cli.verbose);
    match tessera_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A rejected query is the user's answer, not a service failure: no log line.
            if e.downcast_ref::<tessera_server::cli::QueryFailed>()
                .is_none()
            {
                tracing::error!("{e:#}");
            }
            // Also on stderr without log decoration, for scripts.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
