//! The compute runtime: a multi-thread tokio runtime of the engine's own that runs
//! DataFusion's CPU work, so that the caller's runtime (the server's: HTTP, timers, other
//! queries' deadlines) stays responsive however busy the queries keep the CPUs.
//!
//! [`execute`] plans and starts a query on the compute runtime and hands back a stream that
//! only receives finished batches through a bounded channel: the caller's task never polls a
//! DataFusion operator, so a deadline on the caller's side fires on time. Dropping that
//! stream aborts the compute task, which drops DataFusion's stream and with it every task
//! DataFusion spawned (they are spawned onto the compute runtime, being spawned from it).
//! An operator in the middle of a long computation stops at its next yield point: a
//! nested-loop join with no output rows may hold a worker for seconds after the drop, but
//! no longer holds the caller.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream, execute_stream};
use futures::{Future, Stream, StreamExt};
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Batches a query may have computed ahead of its reader: enough to overlap computing with
/// sending, few enough that a slow reader holds back the work (and its memory).
const AHEAD: usize = 2;

/// The compute runtime, started on first use and shared by every engine of the process (as
/// the memory pool's budget is, in practice). One worker per core: DataFusion's
/// `target_partitions` is sized to the same count.
/// An error (threads that could not be spawned) is kept and returned to every query.
pub(crate) fn handle() -> std::result::Result<&'static Handle, String> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("tessera-compute")
                .enable_all()
                .build()
                .map_err(|e| format!("starting the compute runtime: {e}"))
        })
        .as_ref()
        .map(Runtime::handle)
        .map_err(Clone::clone)
}

/// Aborts the task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Creates `df`'s physical plan and executes it on the compute runtime, its operators
/// reserving memory from `pool` if given (else the session's). Returns once the plan has
/// started, with a stream of its batches; dropping the stream (or this future) cancels the
/// work.
pub(crate) async fn execute(
    df: DataFrame,
    pool: Option<Arc<dyn MemoryPool>>,
) -> Result<SendableRecordBatchStream> {
    let (schema_tx, schema_rx) = oneshot::channel::<Result<SchemaRef>>();
    let (tx, rx) = mpsc::channel(AHEAD);
    let runtime = handle().map_err(datafusion::error::DataFusionError::Execution)?;
    let task = AbortOnDrop(runtime.spawn(async move {
        let mut ctx = df.task_ctx();
        if let Some(pool) = pool {
            let mut env = RuntimeEnv::clone(&ctx.runtime_env());
            env.memory_pool = pool;
            ctx = ctx.with_runtime(Arc::new(env));
        }
        let started = match df.create_physical_plan().await {
            Ok(plan) => execute_stream(plan, Arc::new(ctx)),
            Err(e) => Err(e),
        };
        let mut stream = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = schema_tx.send(Err(e));
                return;
            }
        };
        if schema_tx.send(Ok(stream.schema())).is_err() {
            return;
        }
        while let Some(item) = stream.next().await {
            let last = item.is_err();
            // A closed channel means the reader is gone: stop computing.
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    }));
    let schema = match schema_rx.await {
        Ok(r) => r?,
        // The task ended without a word: it panicked.
        Err(_) => return Err(ended(task).await),
    };
    Ok(Box::pin(Batches {
        schema,
        rx,
        task: Some(task),
    }))
}

/// The error for a compute task that ended without finishing its stream.
async fn ended(mut task: AbortOnDrop) -> DataFusionError {
    let why = match (&mut task.0).await {
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into())
        }
        Err(e) => e.to_string(),
        Ok(()) => "no reason given".into(),
    };
    DataFusionError::Internal(format!("the query's compute task ended early: {why}"))
}

/// The reading end of a query running on the compute runtime.
struct Batches {
    schema: SchemaRef,
    rx: mpsc::Receiver<Result<RecordBatch>>,
    /// `None` once the stream has ended.
    task: Option<AbortOnDrop>,
}

impl Stream for Batches {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(task) = this.task.as_mut() else {
            return Poll::Ready(None);
        };
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => Poll::Pending,
            // The sender is gone: the task has finished, or panicked.
            Poll::Ready(None) => {
                let done = match Pin::new(&mut task.0).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                this.task = None;
                match done {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(DataFusionError::Internal(format!(
                        "the query's compute task ended early: {e}"
                    ))))),
                }
            }
        }
    }
}

impl RecordBatchStream for Batches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    #[test]
    fn compute_runs_on_its_own_threads() {
        let name = handle()
            .unwrap()
            .block_on(async {
                handle()
                    .unwrap()
                    .spawn(async { std::thread::current().name().map(String::from) })
                    .await
            })
            .unwrap();
        assert_eq!(name.as_deref(), Some("tessera-compute"));
    }

    /// The cross join of 60,000 rows with itself (in batches of 1024): 3.6·10⁹ rows.
    async fn long_query() -> DataFrame {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batches = (0..60)
            .map(|i| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from_iter_values(
                        i * 1024..(i + 1) * 1024,
                    ))],
                )
                .unwrap()
            })
            .collect();
        let ctx = SessionContext::new();
        let t = MemTable::try_new(schema, vec![batches]).unwrap();
        ctx.register_table("t", Arc::new(t)).unwrap();
        ctx.sql("SELECT a.v AS x, b.v AS y FROM t a, t b")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn results_arrive_and_dropping_the_stream_stops_the_work() {
        let alive = || handle().unwrap().metrics().num_alive_tasks();
        // A short query answers through the channel.
        let ctx = SessionContext::new();
        let df = ctx.sql("SELECT 1 + 1 AS two").await.unwrap();
        let batches: Vec<RecordBatch> = execute(df, None)
            .await
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
            .await;
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);

        // A long one computes only a few batches ahead of its reader, and stops when the
        // reader goes away.
        let mut stream = execute(long_query().await, None).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.num_rows() > 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(alive() > 0, "the query runs on the compute runtime");
        drop(stream);
        let t = Instant::now();
        while alive() > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{} compute tasks still alive after dropping the stream",
                alive()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
