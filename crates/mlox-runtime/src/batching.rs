//! Adaptive batching: concurrent prediction requests for one model are merged into one call
//! of its runtime and the answer is cut back into each request's rows. A batch closes when it
//! holds `max_batch_size` requests or its first request has waited `max_batch_time`, as in
//! MLServer's `model-settings.json`.
//!
//! Correctness comes first, because batching bugs are silent: only requests with the same
//! inference parameters and the same columns or tensor layout share a batch (the others start
//! the next one), and when the merged call fails or answers a row count that cannot be split
//! back, every request is run on its own so each gets its own answer or error. The queue is
//! bounded; a full queue is answered with 503 at once instead of letting latency grow.
//!
//! [`BatchOptions::merge_waiting`] is the same machinery with no waiting at all: a batch is
//! whatever queued up while every worker was busy, so an idle model answers each request at
//! once and a loaded one pays its per-call cost once per batch instead of once per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow_array::{Array, ArrayRef, RecordBatch};
use async_trait::async_trait;
use mlox_core::{Code, Error, Result};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::{
    BatchStats, ModelInput, ModelOutput, PredictRequest, Predictor, ProtocolRequest,
    ProtocolResponse, Tensor,
};

/// How one model batches.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOptions {
    /// Requests per batch at most.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for others.
    pub max_batch_time: Duration,
    /// Requests waiting for a batch at most; more are refused with 503.
    pub max_queue: usize,
    /// Batches the runtime works on at once (its worker count); the next batch forms while
    /// they run, and the queue fills only when all are busy.
    pub max_concurrent_batches: usize,
}

impl BatchOptions {
    /// MLServer's rule: batching is on when more than one request may share a batch and they
    /// may wait for each other.
    pub fn from_settings(
        max_batch_size: Option<u64>,
        max_batch_time_s: Option<f64>,
        max_concurrent_batches: usize,
    ) -> Option<Self> {
        let size = usize::try_from(max_batch_size?).ok()?;
        let wait = max_batch_time_s.filter(|t| t.is_finite() && *t > 0.0)?;
        (size > 1).then(|| BatchOptions {
            max_batch_size: size,
            max_batch_time: Duration::from_secs_f64(wait.min(60.0)),
            max_queue: size.saturating_mul(64).max(1024),
            max_concurrent_batches: max_concurrent_batches.max(1),
        })
    }

    /// Merges the requests that wait for a busy runtime, up to `max_batch_size` of them, and
    /// never holds a request back to wait for others.
    pub fn merge_waiting(max_batch_size: usize, max_concurrent_batches: usize) -> Option<Self> {
        (max_batch_size > 1).then(|| BatchOptions {
            max_batch_size,
            max_batch_time: Duration::ZERO,
            max_queue: max_batch_size.saturating_mul(64).max(1024),
            max_concurrent_batches: max_concurrent_batches.max(1),
        })
    }
}

struct Pending {
    request: PredictRequest,
    rows: usize,
    reply: oneshot::Sender<Result<ModelOutput>>,
}

/// A [`Predictor`] that batches calls to `inner`.
pub struct Batching {
    inner: Arc<dyn Predictor>,
    queue: mpsc::Sender<Pending>,
    options: BatchOptions,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    batched_requests: AtomicU64,
}

impl Batching {
    /// Wraps `inner`; the batching task ends when the returned predictor is dropped.
    pub fn wrap(inner: Arc<dyn Predictor>, options: BatchOptions) -> Arc<dyn Predictor> {
        let (queue, waiting) = mpsc::channel(options.max_queue.max(1));
        let counters = Arc::new(Counters::default());
        tokio::spawn(collect(
            inner.clone(),
            waiting,
            options.clone(),
            counters.clone(),
        ));
        Arc::new(Batching {
            inner,
            queue,
            options,
            counters,
        })
    }
}

#[async_trait]
impl Predictor for Batching {
    async fn predict_request(&self, request: ProtocolRequest) -> Result<ProtocolResponse> {
        // A request the model reads itself has no rows to merge.
        self.inner.predict_request(request).await
    }

    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
        // Requests that cannot be split by rows, or fill a batch alone, skip the queue.
        let rows = match rows_of(&request.input) {
            Some(rows) if rows > 0 => rows,
            _ => return self.inner.predict(request).await,
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            request,
            rows,
            reply,
        };
        self.queue.try_send(pending).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::unavailable(format!(
                "the model's batch queue is full ({} requests waiting); retry later",
                self.options.max_queue
            )),
            mpsc::error::TrySendError::Closed(_) => Error::unavailable("the model is stopping"),
        })?;
        answer
            .await
            .map_err(|_| Error::unavailable("the model stopped before answering"))?
    }

    fn batch_stats(&self) -> Option<BatchStats> {
        Some(BatchStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            batched_requests: self.counters.batched_requests.load(Ordering::Relaxed),
            queued: self.queue.max_capacity() - self.queue.capacity(),
        })
    }
}

/// Forms batches from the queue and hands each to its own task, so the next batch fills
/// while the runtime works on this one; with every batch slot busy, requests wait in the
/// queue and the next batch takes as many of them as it may.
async fn collect(
    inner: Arc<dyn Predictor>,
    mut waiting: mpsc::Receiver<Pending>,
    options: BatchOptions,
    counters: Arc<Counters>,
) {
    let busy = Arc::new(tokio::sync::Semaphore::new(
        options.max_concurrent_batches.max(1),
    ));
    let mut carried: Option<Pending> = None;
    loop {
        let Ok(permit) = busy.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(p) => p,
            None => match waiting.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let deadline = Instant::now() + options.max_batch_time;
        let mut batch = vec![first];
        while batch.len() < options.max_batch_size {
            let next = if options.max_batch_time.is_zero() {
                waiting.try_recv().ok()
            } else {
                tokio::time::timeout_at(deadline, waiting.recv())
                    .await
                    .ok()
                    .flatten()
            };
            match next {
                Some(next) if fits(&batch[0].request, &next.request) => batch.push(next),
                Some(next) => {
                    carried = Some(next);
                    break;
                }
                None => break,
            }
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .batched_requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let inner = inner.clone();
        tokio::spawn(async move {
            answer(inner, batch).await;
            drop(permit);
        });
    }
}

async fn answer(inner: Arc<dyn Predictor>, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let Some(only) = batch.pop() else { return };
        let result = inner.predict(only.request).await;
        let _ = only.reply.send(result);
        return;
    }
    let rows: Vec<usize> = batch.iter().map(|p| p.rows).collect();
    let merged = merge(&batch);
    let split = match merged {
        Ok(request) => match inner.predict(request).await {
            Ok(output) => split(output, &rows).ok(),
            // A runtime that is down fails everyone alike; retrying each would only wait
            // again for the same restart.
            Err(e) if e.code == Code::TemporarilyUnavailable => {
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
                return;
            }
            Err(_) => None,
        },
        Err(_) => None,
    };
    match split {
        Some(parts) => {
            for (p, part) in batch.into_iter().zip(parts) {
                let _ = p.reply.send(Ok(part));
            }
        }
        None => {
            // One request's bad rows must not fail the others: each runs alone.
            let alone = batch.into_iter().map(|p| {
                let inner = inner.clone();
                async move {
                    let result = inner.predict(p.request).await;
                    let _ = p.reply.send(result);
                }
            });
            futures::future::join_all(alone).await;
        }
    }
}

/// Rows of a request: a frame's rows, or the shared first dimension of its tensors.
fn rows_of(input: &ModelInput) -> Option<usize> {
    match input {
        ModelInput::Frame(frame) => Some(frame.num_rows()),
        ModelInput::Tensors(tensors) => {
            let first = *tensors.first()?.shape.first()?;
            tensors
                .iter()
                .all(|t| t.shape.first() == Some(&first))
                .then_some(first)
        }
    }
}

/// Whether two requests can share one call: same parameters, same columns or tensor layout.
fn fits(a: &PredictRequest, b: &PredictRequest) -> bool {
    if a.params != b.params {
        return false;
    }
    match (&a.input, &b.input) {
        (ModelInput::Frame(x), ModelInput::Frame(y)) => x.schema() == y.schema(),
        (ModelInput::Tensors(x), ModelInput::Tensors(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(s, t)| {
                    s.name == t.name
                        && s.data.data_type() == t.data.data_type()
                        && s.shape.get(1..) == t.shape.get(1..)
                })
        }
        _ => false,
    }
}

fn merge(batch: &[Pending]) -> Result<PredictRequest> {
    let first = &batch[0].request;
    let input = match &first.input {
        ModelInput::Frame(frame) => {
            let frames: Vec<&RecordBatch> = batch
                .iter()
                .filter_map(|p| match &p.request.input {
                    ModelInput::Frame(f) => Some(f),
                    ModelInput::Tensors(_) => None,
                })
                .collect();
            ModelInput::Frame(
                arrow_select::concat::concat_batches(&frame.schema(), frames)
                    .map_err(|e| Error::internal(format!("cannot merge a batch: {e}")))?,
            )
        }
        ModelInput::Tensors(tensors) => {
            let mut merged = Vec::with_capacity(tensors.len());
            for (i, tensor) in tensors.iter().enumerate() {
                let parts: Vec<&dyn Array> = batch
                    .iter()
                    .filter_map(|p| match &p.request.input {
                        ModelInput::Tensors(ts) => ts.get(i).map(|t| t.data.as_ref()),
                        ModelInput::Frame(_) => None,
                    })
                    .collect();
                let data = arrow_select::concat::concat(&parts)
                    .map_err(|e| Error::internal(format!("cannot merge a batch: {e}")))?;
                let mut shape = tensor.shape.clone();
                shape[0] = batch.iter().map(|p| p.rows).sum();
                merged.push(Tensor {
                    name: tensor.name.clone(),
                    shape,
                    data,
                });
            }
            ModelInput::Tensors(merged)
        }
    };
    Ok(PredictRequest {
        input,
        params: first.params.clone(),
    })
}

/// Cuts a batch's answer back into each request's rows; an answer that is not one row per
/// input row cannot be cut.
fn split(output: ModelOutput, rows: &[usize]) -> Result<Vec<ModelOutput>> {
    let total: usize = rows.iter().sum();
    let offsets = rows.iter().scan(0, |start, n| {
        let at = *start;
        *start += n;
        Some((at, *n))
    });
    match output {
        ModelOutput::Frame(frame) => {
            if frame.num_rows() != total {
                return Err(row_mismatch(frame.num_rows(), total));
            }
            Ok(offsets
                .map(|(at, n)| ModelOutput::Frame(frame.slice(at, n)))
                .collect())
        }
        ModelOutput::Tensors(tensors) => {
            let mut per_row = Vec::with_capacity(tensors.len());
            for t in &tensors {
                if t.shape.first() != Some(&total) {
                    return Err(row_mismatch(t.shape.first().copied().unwrap_or(0), total));
                }
                per_row.push(t.shape[1..].iter().product::<usize>());
            }
            Ok(offsets
                .map(|(at, n)| {
                    ModelOutput::Tensors(
                        tensors
                            .iter()
                            .zip(&per_row)
                            .map(|(t, width)| {
                                let mut shape = t.shape.clone();
                                shape[0] = n;
                                let data: ArrayRef = t.data.slice(at * width, n * width);
                                Tensor {
                                    name: t.name.clone(),
                                    shape,
                                    data,
                                }
                            })
                            .collect(),
                    )
                })
                .collect())
        }
    }
}

fn row_mismatch(got: usize, want: usize) -> Error {
    Error::internal(format!(
        "the model answered {got} rows for {want} batched input rows"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array};
    use arrow_schema::{DataType, Field, Schema};
    use serde_json::{Map, Value};
    use std::sync::Mutex;

    /// Doubles column `x`, records the rows of each call, refuses negative values.
    #[derive(Default)]
    struct Doubler {
        calls: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Predictor for Doubler {
        async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
            match request.input {
                ModelInput::Frame(frame) => {
                    self.calls.lock().unwrap().push(frame.num_rows());
                    let x = frame
                        .column(0)
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .unwrap();
                    if x.iter().flatten().any(|v| v < 0.0) {
                        return Err(Error::invalid("negative x"));
                    }
                    if request.params.contains_key("sum") {
                        let total: f64 = x.iter().flatten().sum();
                        return Ok(ModelOutput::Frame(frame_of(&[total])));
                    }
                    let doubled: Vec<f64> = x.iter().flatten().map(|v| v * 2.0).collect();
                    Ok(ModelOutput::Frame(frame_of(&doubled)))
                }
                ModelInput::Tensors(tensors) => {
                    self.calls.lock().unwrap().push(tensors[0].shape[0]);
                    Ok(ModelOutput::Tensors(tensors))
                }
            }
        }
    }

    fn frame_of(values: &[f64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(values.to_vec()))]).unwrap()
    }

    fn frame_request(values: &[f64]) -> PredictRequest {
        PredictRequest {
            input: ModelInput::Frame(frame_of(values)),
            params: Map::new(),
        }
    }

    fn values(output: &ModelOutput) -> Vec<f64> {
        match output {
            ModelOutput::Frame(f) => f
                .column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .values()
                .to_vec(),
            ModelOutput::Tensors(_) => panic!("expected a frame"),
        }
    }

    fn options(size: usize, wait_ms: u64) -> BatchOptions {
        BatchOptions {
            max_batch_size: size,
            max_batch_time: Duration::from_millis(wait_ms),
            max_queue: 64,
            max_concurrent_batches: 2,
        }
    }

    async fn run_all(
        predictor: &Arc<dyn Predictor>,
        requests: Vec<PredictRequest>,
    ) -> Vec<Result<ModelOutput>> {
        let calls = requests.into_iter().map(|r| {
            let p = predictor.clone();
            tokio::spawn(async move { p.predict(r).await })
        });
        let mut out = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            out.push(call.await.unwrap());
        }
        out
    }

    #[test]
    fn batching_is_on_only_for_more_than_one_request_and_a_positive_wait() {
        assert_eq!(BatchOptions::from_settings(None, Some(0.1), 1), None);
        assert_eq!(BatchOptions::from_settings(Some(1), Some(0.1), 1), None);
        assert_eq!(BatchOptions::from_settings(Some(8), None, 1), None);
        assert_eq!(BatchOptions::from_settings(Some(8), Some(0.0), 1), None);
        let on = BatchOptions::from_settings(Some(8), Some(0.05), 3).unwrap();
        assert_eq!(on.max_batch_size, 8);
        assert_eq!(on.max_batch_time, Duration::from_millis(50));
        assert_eq!(on.max_concurrent_batches, 3);
    }

    #[tokio::test]
    async fn concurrent_requests_of_different_sizes_get_exactly_their_own_rows() {
        let inner = Arc::new(Doubler::default());
        let predictor = Batching::wrap(inner.clone(), options(3, 500));
        let answers = run_all(
            &predictor,
            vec![
                frame_request(&[1.0]),
                frame_request(&[2.0, 3.0, 4.0]),
                frame_request(&[5.0, 6.0]),
            ],
        )
        .await;
        let got: Vec<Vec<f64>> = answers
            .iter()
            .map(|a| values(a.as_ref().unwrap()))
            .collect();
        assert_eq!(got, vec![vec![2.0], vec![4.0, 6.0, 8.0], vec![10.0, 12.0]]);
        assert_eq!(
            *inner.calls.lock().unwrap(),
            vec![6],
            "one call for all three"
        );
        assert_eq!(
            predictor.batch_stats(),
            Some(BatchStats {
                batches: 1,
                batched_requests: 3,
                queued: 0
            })
        );
    }

    /// Doubles `x` once a permit is released, so a test decides when each call finishes.
    struct Gated {
        calls: Mutex<Vec<usize>>,
        release: tokio::sync::Semaphore,
    }

    #[async_trait]
    impl Predictor for Gated {
        async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
            let ModelInput::Frame(frame) = request.input else {
                panic!("expected a frame")
            };
            self.calls.lock().unwrap().push(frame.num_rows());
            self.release.acquire().await.unwrap().forget();
            let x = frame.column(0).as_any().downcast_ref::<Float64Array>();
            let doubled: Vec<f64> = x.unwrap().values().iter().map(|v| v * 2.0).collect();
            Ok(ModelOutput::Frame(frame_of(&doubled)))
        }
    }

    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("condition not reached in 1 s");
    }

    #[test]
    fn merging_waiting_requests_needs_room_for_more_than_one() {
        assert_eq!(BatchOptions::merge_waiting(1, 2), None);
        let on = BatchOptions::merge_waiting(16, 2).unwrap();
        assert_eq!(on.max_batch_time, Duration::ZERO);
        assert_eq!((on.max_batch_size, on.max_concurrent_batches), (16, 2));
    }

    #[tokio::test]
    async fn merging_waiting_requests_never_holds_one_back_and_merges_those_queued_behind_a_busy_runtime()
     {
        let inner = Arc::new(Gated {
            calls: Mutex::new(Vec::new()),
            release: tokio::sync::Semaphore::new(0),
        });
        let predictor = Batching::wrap(inner.clone(), BatchOptions::merge_waiting(8, 1).unwrap());
        let p = predictor.clone();
        let first = tokio::spawn(async move { p.predict(frame_request(&[1.0])).await });
        // The first request reaches the runtime alone, with nobody to wait for.
        until(|| inner.calls.lock().unwrap().len() == 1).await;
        let p = predictor.clone();
        let queued = tokio::spawn(async move {
            run_all(
                &p,
                vec![
                    frame_request(&[2.0, 3.0]),
                    frame_request(&[4.0]),
                    frame_request(&[5.0, 6.0, 7.0]),
                ],
            )
            .await
        });
        until(|| predictor.batch_stats().is_some_and(|s| s.queued == 3)).await;
        inner.release.add_permits(2);
        assert_eq!(values(&first.await.unwrap().unwrap()), vec![2.0]);
        let got: Vec<Vec<f64>> = queued
            .await
            .unwrap()
            .iter()
            .map(|a| values(a.as_ref().unwrap()))
            .collect();
        assert_eq!(got, vec![vec![4.0, 6.0], vec![8.0], vec![10.0, 12.0, 14.0]]);
        assert_eq!(*inner.calls.lock().unwrap(), vec![1, 6]);
    }

    #[tokio::test]
    async fn a_batch_closes_after_max_batch_time_without_waiting_for_more() {
        let inner = Arc::new(Doubler::default());
        let predictor = Batching::wrap(inner.clone(), options(100, 20));
        let answer = predictor.predict(frame_request(&[1.5])).await.unwrap();
        assert_eq!(values(&answer), vec![3.0]);
        assert_eq!(*inner.calls.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn requests_with_different_parameters_never_share_a_call() {
        let inner = Arc::new(Doubler::default());
        let predictor = Batching::wrap(inner.clone(), options(4, 300));
        let mut with_param = frame_request(&[1.0, 2.0]);
        with_param.params.insert("sum".into(), Value::Bool(true));
        let answers = run_all(
            &predictor,
            vec![frame_request(&[1.0]), with_param, frame_request(&[3.0])],
        )
        .await;
        let got: Vec<Vec<f64>> = answers
            .iter()
            .map(|a| values(a.as_ref().unwrap()))
            .collect();
        assert_eq!(got, vec![vec![2.0], vec![3.0], vec![6.0]]);
        let calls = inner.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 4, "{calls:?}");
        assert!(calls.len() >= 2, "{calls:?}");
    }

    #[tokio::test]
    async fn one_bad_request_fails_alone() {
        let inner = Arc::new(Doubler::default());
        let predictor = Batching::wrap(inner.clone(), options(3, 500));
        let answers = run_all(
            &predictor,
            vec![
                frame_request(&[1.0]),
                frame_request(&[-1.0, 2.0]),
                frame_request(&[3.0]),
            ],
        )
        .await;
        assert_eq!(values(answers[0].as_ref().unwrap()), vec![2.0]);
        assert_eq!(answers[1].as_ref().unwrap_err().message, "negative x");
        assert_eq!(values(answers[2].as_ref().unwrap()), vec![6.0]);
    }

    #[tokio::test]
    async fn an_answer_that_is_not_row_wise_is_recomputed_per_request() {
        let inner = Arc::new(Doubler::default());
        let predictor = Batching::wrap(inner.clone(), options(2, 500));
        let sum = |v: &[f64]| {
            let mut r = frame_request(v);
            r.params.insert("sum".into(), Value::Bool(true));
            r
        };
        let answers = run_all(&predictor, vec![sum(&[1.0, 2.0]), sum(&[10.0])]).await;
        assert_eq!(values(answers[0].as_ref().unwrap()), vec![3.0]);
        assert_eq!(values(answers[1].as_ref().unwrap()), vec![10.0]);
    }

    #[tokio::test]
    async fn tensors_are_merged_along_the_first_dimension_and_cut_back() {
        let inner = Arc::new(Doubler::default());
        let predictor = Batching::wrap(inner.clone(), options(2, 500));
        let tensor = |rows: usize, start: i64| PredictRequest {
            input: ModelInput::Tensors(vec![Tensor {
                name: "t".into(),
                shape: vec![rows, 2],
                data: Arc::new(Int64Array::from_iter_values(start..start + 2 * rows as i64)),
            }]),
            params: Map::new(),
        };
        let answers = run_all(&predictor, vec![tensor(1, 0), tensor(2, 100)]).await;
        let got: Vec<(Vec<usize>, Vec<i64>)> = answers
            .iter()
            .map(|a| match a.as_ref().unwrap() {
                ModelOutput::Tensors(ts) => (
                    ts[0].shape.clone(),
                    ts[0]
                        .data
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .values()
                        .to_vec(),
                ),
                ModelOutput::Frame(_) => panic!("expected tensors"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (vec![1, 2], vec![0, 1]),
                (vec![2, 2], vec![100, 101, 102, 103])
            ]
        );
        assert_eq!(*inner.calls.lock().unwrap(), vec![3]);
    }

    /// Never answers, so the queue behind it fills.
    struct Stuck;
    #[async_trait]
    impl Predictor for Stuck {
        async fn predict(&self, _: PredictRequest) -> Result<ModelOutput> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_full_queue_is_answered_503_at_once() {
        let predictor = Batching::wrap(
            Arc::new(Stuck),
            BatchOptions {
                max_batch_size: 2,
                max_batch_time: Duration::from_secs(3600),
                max_queue: 1,
                max_concurrent_batches: 1,
            },
        );
        // The first two requests make a batch the runtime never finishes; the third waits in
        // the queue for a batch slot, and the fourth finds the queue full.
        let mut waiting = Vec::new();
        let mut refused = None;
        for _ in 0..10 {
            let p = predictor.clone();
            let call = tokio::spawn(async move { p.predict(frame_request(&[1.0])).await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            if call.is_finished() {
                refused = Some(call.await.unwrap());
                break;
            }
            waiting.push(call);
        }
        let err = refused.expect("some request was refused").unwrap_err();
        assert_eq!(predictor.batch_stats().unwrap().queued, 1);
        assert_eq!(err.code, Code::TemporarilyUnavailable);
        assert!(err.message.contains("queue is full"), "{}", err.message);
    }
}
