//! Token-level divergences between the student's and the teacher's next-token distributions, and
//! the per-micro-batch losses of logit KD and on-policy distillation built on them.
//!
//! All take log-probabilities over the whole (shared) vocabulary, `[rows, vocab]`, and return one
//! value per row, `[rows, 1]`; the teacher's side is a constant (no gradient reaches it).
//! - forward KL(p_T || p_S) = sum p_T (log p_T - log p_S): mode-covering, the classic KD loss
//!   (Hinton et al.), equal to the cross-entropy to the teacher's soft labels up to a constant;
//! - reverse KL(p_S || p_T) = sum p_S (log p_S - log p_T): mode-seeking, what on-policy
//!   distillation minimizes on the student's own samples;
//! - generalized JSD with weight beta on the teacher (as TRL's GKD): with the mixture
//!   m = beta p_T + (1 - beta) p_S, beta KL(p_T || m) + (1 - beta) KL(p_S || m).

use r1kit_model::burn::prelude::*;
use r1kit_model::burn::tensor::activation::log_softmax;
use r1kit_model::logprobs::token_logprobs;
use r1kit_model::device::autodiff_like;
use r1kit_model::{AttentionMask, Model};
use r1kit_train::packing::PackedBatch;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DivergenceKind {
    ForwardKl,
    ReverseKl,
    Jsd,
}

impl std::str::FromStr for DivergenceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forward-kl" => Ok(DivergenceKind::ForwardKl),
            "reverse-kl" => Ok(DivergenceKind::ReverseKl),
            "jsd" => Ok(DivergenceKind::Jsd),
            other => Err(format!("unknown divergence `{other}` (forward-kl, reverse-kl, jsd)")),
        }
    }
}

/// A divergence with its parameter (JSD's teacher weight, in (0, 1)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Divergence {
    pub kind: DivergenceKind,
    pub jsd_beta: f64,
}

/// sum_v p(v) (log p(v) - log q(v)) per row.
fn kl_rows(logp: Tensor<2>, logq: Tensor<2>) -> Tensor<2> {
    (logp.clone().exp() * (logp - logq)).sum_dim(1)
}

/// log(a e^x + b e^y), elementwise, without overflow.
fn log_mix(x: Tensor<2>, a: f64, y: Tensor<2>, b: f64) -> Tensor<2> {
    let top = x.clone().max_pair(y.clone()).detach();
    let mixed = (x - top.clone()).exp() * a + (y - top.clone()).exp() * b;
    mixed.log() + top
}

/// Per-row divergence between the student's `student_logp` and the teacher's `teacher_logp`.
pub fn divergence_rows(student_logp: Tensor<2>, teacher_logp: Tensor<2>, divergence: Divergence) -> Tensor<2> {
    let teacher_logp = if student_logp.is_autodiff() { autodiff_like(teacher_logp.detach(), &student_logp) } else { teacher_logp };
    match divergence.kind {
        DivergenceKind::ForwardKl => kl_rows(teacher_logp, student_logp),
        DivergenceKind::ReverseKl => kl_rows(student_logp, teacher_logp),
        DivergenceKind::Jsd => {
            let beta = divergence.jsd_beta;
            let mixture = log_mix(teacher_logp.clone(), beta, student_logp.clone(), 1.0 - beta);
            kl_rows(teacher_logp, mixture.clone()) * beta + kl_rows(student_logp, mixture) * (1.0 - beta)
        }
    }
}

/// Flat positions (`row * seq + col`) of a block whose next token is trained on.
pub fn trained_positions(batch: &PackedBatch) -> Vec<usize> {
    batch.loss_mask.iter().enumerate().filter(|(_, m)| **m > 0.0).map(|(i, _)| i).collect()
}

fn index_tensor(values: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

/// The final hidden states at the trained positions only, `[positions, hidden]` (the vocabulary
/// projection is the expensive part; prompt positions never need it).
fn hidden_at(model: &Model, batch: &PackedBatch, positions: &[usize]) -> Tensor<2> {
    let mask = AttentionMask::causal_segments(&batch.segments, batch.batch);
    let hidden = model.forward_hidden(&batch.tokens, &batch.positions, batch.batch, &mask, None);
    let [b, s, h] = hidden.dims();
    let device = hidden.device();
    hidden.reshape([b * s, h]).select(0, index_tensor(positions, &device))
}

/// Logit KD on one micro-batch: the divergence at every trained position, summed and multiplied
/// by `scale` (1 / trained tokens of the whole optimizer step, so that accumulation over
/// micro-batches gives the step's token mean). Logits are divided by `temperature` on both sides
/// and the loss multiplied by temperature² (Hinton et al.), so gradients keep their size. The
/// teacher's logits are computed here, in chunks of `chunk_rows` positions, and never stored.
pub fn kd_loss(student: &Model, teacher: &Model, batch: &PackedBatch, divergence: Divergence, temperature: f64, scale: f64, chunk_rows: usize) -> Tensor<1> {
    let positions = trained_positions(batch);
    if positions.is_empty() {
        return zero_with_graph(student);
    }
    let hs = hidden_at(student, batch, &positions);
    let ht = hidden_at(teacher, batch, &positions);
    let [n, h_s] = hs.dims();
    let h_t = ht.dims()[1];
    let mut total: Option<Tensor<1>> = None;
    for start in (0..n).step_by(chunk_rows.max(1)) {
        let end = (start + chunk_rows.max(1)).min(n);
        let ls = log_softmax(student.logits_2d(hs.clone().slice([start..end, 0..h_s])) / temperature, 1);
        let lt = log_softmax(teacher.logits_2d(ht.clone().slice([start..end, 0..h_t])) / temperature, 1);
        let part = divergence_rows(ls, lt, divergence).sum();
        total = Some(match total {
            Some(t) => t + part,
            None => part,
        });
    }
    total.expect("at least one chunk") * (scale * temperature * temperature)
}

/// A zero loss that still reaches the parameters (a micro-batch with nothing to train on).
fn zero_with_graph(model: &Model) -> Tensor<1> {
    let (_, w) = model.parameters().into_iter().next().expect("a model has parameters");
    w.sum() * 0.0
}

/// On-policy distillation with the sampled-token estimator, on one micro-batch of the student's
/// own samples: per completion token x, loss = sg(log p_S(x) - log p_T(x)) * log p_S(x), whose
/// expectation over x ~ p_S has the gradient of the per-token reverse KL(p_S || p_T) (policy
/// gradient with the negative log-ratio as the per-token reward, as in "on-policy
/// distillation"). Returns the loss (times `scale`) and the sum over tokens of the sampled
/// log-ratio (an unbiased estimate of the reverse KL, for the metrics).
pub fn sampled_reverse_kl_loss(student: &Model, teacher: &Model, batch: &PackedBatch, scale: f64) -> (Tensor<1>, f64) {
    let mask = AttentionMask::causal_segments(&batch.segments, batch.batch);
    let hs = student.forward_hidden(&batch.tokens, &batch.positions, batch.batch, &mask, None);
    let ls = token_logprobs(student, hs, &batch.targets, r1kit_model::logprobs::DEFAULT_CHUNK_ROWS);
    let ht = teacher.forward_hidden(&batch.tokens, &batch.positions, batch.batch, &mask, None);
    let lt = token_logprobs(teacher, ht, &batch.targets, r1kit_model::logprobs::DEFAULT_CHUNK_ROWS);
    let lt = if ls.is_autodiff() { autodiff_like(lt, &ls) } else { lt };
    let weights = Tensor::<2>::from_data(TensorData::new(batch.loss_mask.clone(), [batch.batch, batch.seq]), &student.device());
    let log_ratio = (ls.clone().detach() - lt) * weights.clone();
    let estimate = log_ratio.clone().sum().inner().into_scalar::<f32>() as f64;
    ((log_ratio * ls).sum() * scale, estimate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax(x: &[f64]) -> Vec<f64> {
        let m = x.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect()
    }

    fn kl(p: &[f64], q: &[f64]) -> f64 {
        p.iter().zip(q).map(|(a, b)| a * (a.ln() - b.ln())).sum()
    }

    /// The divergence's value and its gradient wrt the student's logits, computed by burn.
    fn value_and_grad(student: &[f64], teacher: &[f64], divergence: Divergence) -> (f64, Vec<f64>) {
        let device = Device::flex().autodiff();
        let v = student.len();
        let to = |x: &[f64]| TensorData::new(x.iter().map(|&a| a as f32).collect::<Vec<_>>(), [1, v]);
        let s = Tensor::<2>::from_data(to(student), &device).require_grad();
        let t = Tensor::<2>::from_data(to(teacher), &Device::flex());
        let d = divergence_rows(log_softmax(s.clone(), 1), log_softmax(t, 1), divergence).sum();
        let value = d.clone().inner().into_scalar::<f32>() as f64;
        let grads = d.backward();
        (value, s.grad(&grads).unwrap().into_data().try_into_vec_as::<f32>().unwrap().into_iter().map(f64::from).collect())
    }

    /// Central finite differences of `f` (in f64) at `x`.
    fn numeric_grad(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
        (0..x.len())
            .map(|i| {
                let (mut a, mut b) = (x.to_vec(), x.to_vec());
                a[i] += 1e-5;
                b[i] -= 1e-5;
                (f(&a) - f(&b)) / 2e-5
            })
            .collect()
    }

    const STUDENT: [f64; 5] = [0.3, -1.2, 0.8, 0.0, 1.5];
    const TEACHER: [f64; 5] = [1.0, 0.2, -0.5, 0.4, -1.0];

    #[test]
    fn values_and_gradients_match_the_closed_forms() {
        let (ps, pt) = (softmax(&STUDENT), softmax(&TEACHER));
        let jsd = |beta: f64| {
            move |s: &[f64]| {
                let (ps, pt) = (softmax(s), softmax(&TEACHER));
                let m: Vec<f64> = ps.iter().zip(&pt).map(|(a, b)| beta * b + (1.0 - beta) * a).collect();
                beta * kl(&pt, &m) + (1.0 - beta) * kl(&ps, &m)
            }
        };
        let cases: Vec<(Divergence, Box<dyn Fn(&[f64]) -> f64>)> = vec![
            (Divergence { kind: DivergenceKind::ForwardKl, jsd_beta: 0.5 }, Box::new(|s: &[f64]| kl(&softmax(&TEACHER), &softmax(s)))),
            (Divergence { kind: DivergenceKind::ReverseKl, jsd_beta: 0.5 }, Box::new(|s: &[f64]| kl(&softmax(s), &softmax(&TEACHER)))),
            (Divergence { kind: DivergenceKind::Jsd, jsd_beta: 0.5 }, Box::new(jsd(0.5))),
            (Divergence { kind: DivergenceKind::Jsd, jsd_beta: 0.1 }, Box::new(jsd(0.1))),
        ];
        let mut grads = Vec::new();
        for (divergence, reference) in &cases {
            let (value, grad) = value_and_grad(&STUDENT, &TEACHER, *divergence);
            assert!((value - reference(&STUDENT)).abs() < 1e-5, "{divergence:?}: {value} vs {}", reference(&STUDENT));
            for (g, want) in grad.iter().zip(numeric_grad(reference, &STUDENT)) {
                assert!((g - want).abs() < 1e-4, "{divergence:?}: {grad:?} vs finite differences");
            }
            grads.push(grad);
        }
        // forward KL's gradient wrt the logits is p_S - p_T (the soft-label cross-entropy's)
        for i in 0..5 {
            assert!((grads[0][i] - (ps[i] - pt[i])).abs() < 1e-5);
        }
        // the divergences really pull in different directions here
        assert!((0..5).any(|i| (grads[0][i] - grads[1][i]).abs() > 1e-2));
        // identical distributions: zero divergence
        let (zero, _) = value_and_grad(&STUDENT, &STUDENT, Divergence { kind: DivergenceKind::Jsd, jsd_beta: 0.3 });
        assert!(zero.abs() < 1e-6);
    }

    #[test]
    fn sampled_estimator_follows_the_reverse_kl_gradient_in_expectation() {
        // E_{x~p_S}[sg(log p_S(x) - log p_T(x)) grad log p_S(x)] = grad KL(p_S || p_T):
        // weight each outcome's loss by its probability instead of sampling.
        let device = Device::flex().autodiff();
        let s = Tensor::<2>::from_data(TensorData::new(STUDENT.iter().map(|&a| a as f32).collect::<Vec<_>>(), [1, 5]), &device).require_grad();
        let ls = log_softmax(s.clone(), 1);
        let lt: Vec<f32> = softmax(&TEACHER).iter().map(|p| p.ln() as f32).collect();
        let lt = Tensor::<2>::from_data(TensorData::new(lt, [1, 5]), &device);
        let probs = ls.clone().detach().exp();
        let loss = ((ls.clone().detach() - lt) * ls * probs).sum();
        let g: Vec<f32> = s.grad(&loss.backward()).unwrap().into_data().try_into_vec_as::<f32>().unwrap();
        let (_, exact) = value_and_grad(&STUDENT, &TEACHER, Divergence { kind: DivergenceKind::ReverseKl, jsd_beta: 0.5 });
        for (a, b) in g.iter().zip(&exact) {
            assert!((*a as f64 - b).abs() < 1e-5, "{g:?} vs {exact:?}");
        }
    }
}
