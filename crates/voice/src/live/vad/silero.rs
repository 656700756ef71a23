//! The neural stage: Silero VAD v6 (the "op18 ifless" ONNX export) run by tract, pure Rust.
//!
//! The model is compiled into the binary (`models/silero_vad_op18_ifless.onnx`, see
//! `models/README.md`) and optimised once per process; every [`Silero`] shares that plan and
//! keeps its own LSTM state. The sample rate input (`sr`) is baked in as a constant (16 kHz), so
//! the model's one `If` folds away when tract optimises it.

use std::sync::{Arc, LazyLock};

use tract_onnx::pb::TensorProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{TractErrorContext, ensure};

static MODEL_BYTES: &[u8] = include_bytes!("../../../models/silero_vad_op18_ifless.onnx");

/// New samples per window at 16 kHz (32 ms).
pub const WINDOW: usize = 512;
/// Samples of the previous window the model sees before each new one.
pub const CONTEXT: usize = 64;
const RATE: i64 = 16_000;
/// ONNX `TensorProto.DataType` INT64.
const ONNX_INT64: i32 = 7;

type Plan = Arc<TypedRunnableModel>;

/// The optimised model, or `None` (logged once) if it could not be loaded.
static PLAN: LazyLock<Option<Plan>> = LazyLock::new(|| match load() {
    Ok(plan) => Some(plan),
    Err(e) => {
        tracing::error!("voice activity detection: the Silero model failed to load ({e:#}); using the WebRTC detector alone");
        None
    }
});

fn load() -> TractResult<Plan> {
    let onnx = tract_onnx::onnx();
    let mut proto = onnx.proto_model_for_read(&mut &MODEL_BYTES[..])?;
    let graph = proto.graph.as_mut().context("the model has no graph")?;
    graph.input.retain(|i| i.name != "sr");
    graph.initializer.push(TensorProto { name: "sr".into(), data_type: ONNX_INT64, int64_data: vec![RATE], ..Default::default() });
    let inputs: Vec<String> = graph.input.iter().map(|i| i.name.clone()).collect();
    ensure!(inputs == ["input", "state"], "unexpected model inputs {inputs:?}");
    let typed = onnx.model_for_proto_model(&proto)?.into_typed()?;
    let batch = typed.symbols.sym("batch");
    let typed = typed.set_symbols(&[(batch, TDim::Val(1))].into_iter().collect())?;
    typed.into_optimized()?.into_runnable()
}

/// Whether the model is usable in this process (loads it on first call).
pub fn available() -> bool {
    PLAN.is_some()
}

/// One stream's model state.
#[derive(Debug)]
pub struct Silero {
    plan: Plan,
    state: Tensor,
    /// The context followed by the samples of the next window, as f32 in [-1, 1).
    buf: Vec<f32>,
    /// Speech probability of the last window.
    pub prob: f32,
    /// Windows run since creation.
    pub windows: u64,
}

impl Silero {
    /// `None` when the model is not available.
    pub fn new() -> Option<Silero> {
        let plan = PLAN.clone()?;
        let state = Tensor::zero::<f32>(&[2, 1, 128]).ok()?;
        Some(Silero { plan, state, buf: vec![0.0; CONTEXT], prob: 0.0, windows: 0 })
    }

    /// Forget the stream: zero LSTM state and context, drop buffered samples.
    pub fn reset(&mut self) {
        if let Ok(mut view) = self.state.try_as_plain_ram_mut()
            && let Ok(s) = view.as_slice_mut::<f32>()
        {
            s.fill(0.0);
        }
        self.buf.clear();
        self.buf.resize(CONTEXT, 0.0);
        self.prob = 0.0;
    }

    /// Set the context (the samples just before the next ones pushed), after a reset.
    pub fn set_context(&mut self, samples: &[i16]) {
        let from = samples.len().saturating_sub(CONTEXT);
        let tail = &samples[from..];
        self.buf.clear();
        self.buf.resize(CONTEXT - tail.len(), 0.0);
        self.buf.extend(tail.iter().map(|s| f32::from(*s) / 32768.0));
    }

    /// Buffer samples and run every complete window.
    pub fn push(&mut self, samples: &[i16]) -> TractResult<()> {
        self.buf.extend(samples.iter().map(|s| f32::from(*s) / 32768.0));
        while self.buf.len() >= CONTEXT + WINDOW {
            self.run_window()?;
            self.buf.drain(..WINDOW);
        }
        Ok(())
    }

    fn run_window(&mut self) -> TractResult<()> {
        let input = Tensor::from_shape(&[1, CONTEXT + WINDOW], &self.buf[..CONTEXT + WINDOW])?;
        let state = std::mem::replace(&mut self.state, Tensor::zero::<f32>(&[2, 1, 128])?);
        let mut out = self.plan.run(tvec!(input.into(), state.into()))?;
        self.windows += 1;
        ensure!(out.len() == 2, "the model returned {} outputs", out.len());
        self.state = out.pop().context("state")?.into_tensor();
        let prob = out.pop().context("output")?;
        self.prob = *prob.try_as_plain_ram()?.as_slice::<f32>()?.first().context("empty output")?;
        Ok(())
    }
}
