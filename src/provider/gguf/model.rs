//! A decoder-only transformer over GGUF weights, on the CPU, with candle's quantized kernels.
//!
//! Two families: `llama` (SmolLM2, Llama 2, TinyLlama…) and `gemma3`. The forward passes follow
//! candle-transformers' `quantized_llama` and `quantized_gemma3` (MIT OR Apache-2.0) and llama.cpp,
//! with these differences, which are the reason this is not a dependency on candle-transformers:
//!
//! - Gemma's feed-forward gate is GELU (tanh approximation), as in llama.cpp and the reference
//!   implementation; candle-transformers 0.11's quantized Gemma 3 applies SiLU.
//! - Weights are loaded once and shared; the KV cache is a separate [`Cache`] per generation, so
//!   a provider runs several generations over one copy of the weights.
//! - RoPE tables cover the context actually used (not 131,072 positions per layer: 2.3 GB for
//!   Gemma 3 270M), and the token embedding stays quantized (tied to the output projection when
//!   the file has no `output.weight`, as SmolLM2 and Gemma do) instead of a 671 MB f32 copy.
//! - Gemma's sliding-window layers keep to their window while decoding, not only in the prompt.
//! - Building only these two families keeps candle-transformers' 83,000 lines out of the build.
//!
//! Weights in a format for which candle 0.11 has no SIMD kernel on x86 (Q4_1, Q5_0, Q5_1: all of
//! SmolLM2, most of Gemma's file) are re-quantized to Q8_0 when loaded. On the 2-core development
//! machine that made both prompt processing and generation several times faster
//! (`scripts/local_figures.py` measures a run's speed). Q8_0 holds a 4- or 5-bit value almost exactly, but not bit for bit:
//! against llama.cpp's log-probabilities (tests/it/gguf.rs, `gguf_forward_pass_matches_llama_cpp_*`)
//! SmolLM2's largest top-20 difference is 1.45 with it and 0.74 without, within the test's bound.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{Device, Module, Result, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Gemma3,
}

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }
}

struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)
    }
}

/// cos/sin tables for the positions of the context.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(head_dim: usize, base: f32, scale: f32, positions: usize) -> Result<Rope> {
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
            .collect();
        let half = inv_freq.len();
        let mut angles = Vec::with_capacity(positions * half);
        for p in 0..positions {
            angles.extend(inv_freq.iter().map(|f| p as f32 * scale * f));
        }
        let angles = Tensor::from_vec(angles, (positions, half), &Device::Cpu)?;
        Ok(Rope {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }
}

struct Layer {
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    /// Gemma 3: norms of queries and keys per head, and after attention and feed-forward.
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    post_attn_norm: Option<RmsNorm>,
    post_ffn_norm: Option<RmsNorm>,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
    /// Index into [`Weights::ropes`].
    rope: usize,
    /// A sliding-window layer attends to this many positions, itself included.
    window: Option<usize>,
}

/// The weights of one model, loaded once and shared by every generation.
pub struct Weights {
    pub arch: Arch,
    embedding: Arc<QTensor>,
    /// Gemma scales embeddings by √(hidden size).
    embedding_scale: Option<f64>,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: QMatMul,
    ropes: Vec<Rope>,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    /// Positions the RoPE tables cover: the longest prompt + answer this model can run.
    pub context: usize,
}

/// The keys and values of one generation so far.
pub struct Cache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Tokens already processed.
    pub position: usize,
}

impl Weights {
    /// Read the weights of a GGUF file. `max_context` caps the RoPE tables (and thus the longest
    /// prompt + answer) below the model's own context length, to bound memory.
    pub fn load<R: std::io::Seek + std::io::Read>(
        content: &gguf_file::Content,
        reader: &mut R,
        arch: Arch,
        max_context: usize,
    ) -> Result<Weights> {
        let prefix = match arch {
            Arch::Llama => "llama",
            Arch::Gemma3 => "gemma3",
        };
        let md = |key: &str| {
            let key = format!("{prefix}.{key}");
            content
                .metadata
                .get(&key)
                .ok_or_else(|| candle_core::Error::Msg(format!("the file has no `{key}`")))
        };
        let device = Device::Cpu;
        let n_head = md("attention.head_count")?.to_u32()? as usize;
        let n_kv_head = md("attention.head_count_kv")?.to_u32()? as usize;
        let n_layer = md("block_count")?.to_u32()? as usize;
        let hidden = md("embedding_length")?.to_u32()? as usize;
        let eps = md("attention.layer_norm_rms_epsilon")?.to_f32()?;
        let context = md("context_length")
            .and_then(|v| v.to_u32())
            .map_or(max_context, |c| (c as usize).min(max_context));
        let head_dim = match arch {
            Arch::Llama => hidden / n_head,
            Arch::Gemma3 => md("attention.key_length")?.to_u32()? as usize,
        };
        if n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) {
            candle_core::bail!("{n_head} attention heads cannot share {n_kv_head} key/value heads");
        }
        let mut get = |name: &str| content.tensor(reader, name, &device);
        let norm = |t: QTensor| -> Result<RmsNorm> {
            Ok(RmsNorm {
                weight: t.dequantize(&device)?,
                eps,
            })
        };
        let embedding = Arc::new(get("token_embd.weight")?);
        // SmolLM2 and Gemma tie the output projection to the token embedding.
        let output = match get("output.weight") {
            Ok(t) => matmul(t)?,
            Err(_) => QMatMul::from_arc(embedding.clone())?,
        };
        let final_norm = norm(get("output_norm.weight")?)?;

        let mut ropes = Vec::new();
        let mut layers = Vec::with_capacity(n_layer);
        match arch {
            Arch::Llama => {
                let base = md("rope.freq_base")
                    .and_then(|v| v.to_f32())
                    .unwrap_or(10_000.0);
                let dims = md("rope.dimension_count")
                    .and_then(|v| v.to_u32())
                    .map_or(head_dim, |d| d as usize);
                if dims != head_dim {
                    candle_core::bail!(
                        "partial RoPE ({dims} of {head_dim} dimensions) is not supported"
                    );
                }
                ropes.push(Rope::new(head_dim, base, 1.0, context)?);
            }
            Arch::Gemma3 => {
                let global = md("rope.freq_base")
                    .and_then(|v| v.to_f32())
                    .unwrap_or(1_000_000.0);
                let local = md("rope.local_freq_base")
                    .and_then(|v| v.to_f32())
                    .unwrap_or(10_000.0);
                let scale = md("rope.scaling.factor")
                    .and_then(|v| v.to_f32())
                    .map_or(1.0, |f| if f > 0.0 { 1.0 / f } else { 1.0 });
                ropes.push(Rope::new(head_dim, local, 1.0, context)?);
                ropes.push(Rope::new(head_dim, global, scale, context)?);
            }
        }
        let window = match arch {
            Arch::Llama => None,
            Arch::Gemma3 => Some(md("attention.sliding_window")?.to_u32()? as usize),
        };
        // Gemma 3: five sliding-window layers, then one global layer.
        let pattern = md("attention.sliding_window_type")
            .and_then(|v| v.to_u32())
            .map_or(6, |p| p as usize)
            .max(1);

        for i in 0..n_layer {
            let p = format!("blk.{i}");
            let mut q = |name: &str| get(&format!("{p}.{name}.weight"));
            let gemma = arch == Arch::Gemma3;
            let sliding = gemma && (i + 1) % pattern != 0;
            layers.push(Layer {
                wq: matmul(q("attn_q")?)?,
                wk: matmul(q("attn_k")?)?,
                wv: matmul(q("attn_v")?)?,
                wo: matmul(q("attn_output")?)?,
                attn_norm: norm(q("attn_norm")?)?,
                ffn_norm: norm(q("ffn_norm")?)?,
                q_norm: gemma.then(|| q("attn_q_norm").and_then(norm)).transpose()?,
                k_norm: gemma.then(|| q("attn_k_norm").and_then(norm)).transpose()?,
                post_attn_norm: gemma
                    .then(|| q("post_attention_norm").and_then(norm))
                    .transpose()?,
                post_ffn_norm: gemma
                    .then(|| q("post_ffw_norm").and_then(norm))
                    .transpose()?,
                gate: matmul(q("ffn_gate")?)?,
                up: matmul(q("ffn_up")?)?,
                down: matmul(q("ffn_down")?)?,
                rope: if gemma && !sliding { 1 } else { 0 },
                window: if sliding { window } else { None },
            });
        }
        Ok(Weights {
            arch,
            embedding,
            embedding_scale: (arch == Arch::Gemma3).then(|| (hidden as f64).sqrt()),
            layers,
            norm: final_norm,
            output,
            ropes,
            n_head,
            n_kv_head,
            head_dim,
            context,
        })
    }

    pub fn cache(&self) -> Cache {
        Cache {
            layers: (0..self.layers.len()).map(|_| None).collect(),
            position: 0,
        }
    }

    /// Run `tokens` (the prompt, or the one token just generated) and return the logits of the
    /// next token, as f32 over the vocabulary.
    pub fn forward(&self, cache: &mut Cache, tokens: &[u32]) -> Result<Vec<f32>> {
        let last = tokens.len().saturating_sub(1);
        let mut logits = self.forward_at(cache, tokens, &[last])?;
        Ok(logits.pop().expect("one row asked for, one row returned"))
    }

    /// Run `tokens` as [`Weights::forward`] does and return the next-token logits after each of
    /// `rows` (indices into `tokens`). Generation needs only the last row; the tests that compare
    /// this forward pass with llama.cpp's read earlier positions of the same pass too. Only the
    /// rows asked for go through the output projection (a row of Gemma's is 262,144 logits): with
    /// none, the tokens only go into the cache.
    pub fn forward_at(
        &self,
        cache: &mut Cache,
        tokens: &[u32],
        rows: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        let seq = tokens.len();
        let start = cache.position;
        if seq == 0 {
            candle_core::bail!("nothing to run");
        }
        if let Some(&row) = rows.iter().find(|&&r| r >= seq) {
            candle_core::bail!("row {row} is outside the {seq} tokens run");
        }
        if start + seq > self.context {
            candle_core::bail!(
                "{} tokens exceed the context of {} positions",
                start + seq,
                self.context
            );
        }
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self.embedding.embedding(&ids)?.unsqueeze(0)?;
        if let Some(scale) = self.embedding_scale {
            x = (x * scale)?;
        }
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let residual = x.clone();
            let h = layer.attn_norm.forward(&x)?;
            let mut h = self.attention(layer, kv, &h, start)?;
            if let Some(n) = &layer.post_attn_norm {
                h = n.forward(&h)?;
            }
            let x1 = (h + residual)?;
            let h = layer.ffn_norm.forward(&x1)?;
            let gate = layer.gate.forward(&h)?;
            let gate = match self.arch {
                Arch::Llama => gate.silu()?,
                // GELU, tanh approximation (gelu_pytorch_tanh).
                Arch::Gemma3 => gate.gelu()?,
            };
            let mut h = layer.down.forward(&(gate * layer.up.forward(&h)?)?)?;
            if let Some(n) = &layer.post_ffn_norm {
                h = n.forward(&h)?;
            }
            x = (h + x1)?;
        }
        cache.position += seq;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let x = x.index_select(&Tensor::new(rows.as_slice(), &Device::Cpu)?, 1)?;
        let x = self.norm.forward(&x)?;
        self.output.forward(&x)?.squeeze(0)?.to_vec2::<f32>()
    }

    fn attention(
        &self,
        layer: &Layer,
        kv: &mut Option<(Tensor, Tensor)>,
        x: &Tensor,
        start: usize,
    ) -> Result<Tensor> {
        let (b, seq, _) = x.dims3()?;
        let (nh, nkv, hd) = (self.n_head, self.n_kv_head, self.head_dim);
        let q = layer
            .wq
            .forward(x)?
            .reshape((b, seq, nh, hd))?
            .transpose(1, 2)?;
        let k = layer
            .wk
            .forward(x)?
            .reshape((b, seq, nkv, hd))?
            .transpose(1, 2)?;
        let v = layer
            .wv
            .forward(x)?
            .reshape((b, seq, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = match &layer.q_norm {
            Some(n) => n.forward(&q)?,
            None => q.contiguous()?,
        };
        let k = match &layer.k_norm {
            Some(n) => n.forward(&k)?,
            None => k.contiguous()?,
        };
        let rope = &self.ropes[layer.rope];
        let cos = rope.cos.narrow(0, start, seq)?;
        let sin = rope.sin.narrow(0, start, seq)?;
        let (q, k) = match self.arch {
            // llama.cpp's converter permutes llama's Q and K for interleaved rotation.
            Arch::Llama => (
                candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
            ),
            Arch::Gemma3 => (
                candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
            ),
        };
        let (k, v) = match kv.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        *kv = Some((k.clone(), v.clone()));
        // A sliding-window layer only ever needs its window: older keys are dropped here, and the
        // mask below keeps each prompt position to its own window.
        let total = start + seq;
        let (k, v, first) = match layer.window {
            Some(w) if seq == 1 && total > w => (
                k.narrow(2, total - w, w)?,
                v.narrow(2, total - w, w)?,
                total - w,
            ),
            _ => (k, v, 0),
        };
        let kv_len = total - first;
        let rep = nh / nkv;
        let (k, v) = if rep > 1 {
            (
                Tensor::cat(&vec![&k; rep], 2)?.reshape((b, nh, kv_len, hd))?,
                Tensor::cat(&vec![&v; rep], 2)?.reshape((b, nh, kv_len, hd))?,
            )
        } else {
            (k, v)
        };
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let scores = if seq > 1 {
            let mask = mask(seq, start, first, kv_len, layer.window)?;
            scores.broadcast_add(&mask)?
        } else {
            scores
        };
        let attn = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = attn.matmul(&v.contiguous()?)?;
        let y = y.transpose(1, 2)?.reshape((b, seq, nh * hd))?;
        layer.wo.forward(&y)
    }
}

/// A weight matrix for multiplication, re-quantized to Q8_0 when its own format has no fast kernel.
fn matmul(t: QTensor) -> Result<QMatMul> {
    let t = match t.dtype() {
        GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 => {
            QTensor::quantize(&t.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?
        }
        _ => t,
    };
    QMatMul::from_qtensor(t)
}

/// The additive attention mask of `seq` new positions (from `start`) over keys `first..first +
/// kv_len`: a query sees no later key, nor (in a sliding-window layer) a key `window` or more
/// positions back.
fn mask(
    seq: usize,
    start: usize,
    first: usize,
    kv_len: usize,
    window: Option<usize>,
) -> Result<Tensor> {
    let mut m = Vec::with_capacity(seq * kv_len);
    for i in 0..seq {
        let qpos = start + i;
        for j in 0..kv_len {
            let kpos = first + j;
            let hidden = kpos > qpos || window.is_some_and(|w| qpos - kpos >= w);
            m.push(if hidden { f32::NEG_INFINITY } else { 0.0 });
        }
    }
    Tensor::from_vec(m, (seq, kv_len), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_is_causal_and_keeps_to_the_window() {
        let m = mask(3, 0, 0, 3, None).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m[0], [0.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        assert_eq!(m[2], [0.0, 0.0, 0.0]);
        let m = mask(3, 0, 0, 3, Some(2)).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m[2], [f32::NEG_INFINITY, 0.0, 0.0]);
        // Two new positions after three cached ones.
        let m = mask(2, 3, 0, 5, None).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m[0], [0.0, 0.0, 0.0, 0.0, f32::NEG_INFINITY]);
    }
}
