//! One AdamW update of one parameter in one kernel (torch's formula, as `r1kit_train::optim`):
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`, `p = p * decay - (lr / bc1) * m /
//! (sqrt(v) / sqrt(bc2) + eps)`. burn's ops take ~13 kernels per parameter for this, each a pass
//! over the parameter's size; here the parameter, gradient and moments are read once and written once.

use burn::prelude::Tensor;
use cubecl::prelude::*;

use super::launch::{buffer, contiguous, cube_primitive, elements, empty, with_float_type, Cube};
use super::AdamWStep;

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn adamw_update<F: Float>(
    param: &[F],
    grad: &[F],
    m: &[F],
    v: &[F],
    param_out: &mut [F],
    m_out: &mut [F],
    v_out: &mut [F],
    beta1: f32,
    beta2: f32,
    decay: f32,
    step_size: f32,
    sqrt_bc2: f32,
    eps: f32,
) {
    let i = ABSOLUTE_POS;
    if i < param_out.len() {
        let g = f32::cast_from(grad[i]);
        let m_new = beta1 * f32::cast_from(m[i]) + (1.0 - beta1) * g;
        let v_new = beta2 * f32::cast_from(v[i]) + (1.0 - beta2) * g * g;
        let denom = f32::sqrt(v_new) / sqrt_bc2 + eps;
        param_out[i] = F::cast_from(f32::cast_from(param[i]) * decay - step_size * m_new / denom);
        m_out[i] = F::cast_from(m_new);
        v_out[i] = F::cast_from(v_new);
    }
}

/// See [`super::adamw_update`].
pub(super) fn adamw(param: &Tensor<2>, grad: &Tensor<2>, m: &Tensor<2>, v: &Tensor<2>, step: AdamWStep) -> Option<(Tensor<2>, Tensor<2>, Tensor<2>)> {
    let dims = param.dims();
    if [grad.dims(), m.dims(), v.dims()].iter().any(|d| *d != dims) || [grad.dtype(), m.dtype(), v.dtype()].iter().any(|d| *d != param.dtype()) {
        return None;
    }
    let [param, grad, m, v] = [param, grad, m, v].map(|t| cube_primitive(t).map(contiguous));
    let (param, grad, m, v) = (param?, grad?, m?, v?);
    let outputs = [(); 3].map(|_| empty(&param, param.meta.shape().clone(), param.dtype));
    const UNITS: u32 = 256;
    let cubes = elements(&param).div_ceil(UNITS as usize) as u32;
    with_float_type!(param.dtype, F => unsafe {
        adamw_update::launch_unchecked::<F>(
            &param.client,
            CubeCount::Static(cubes, 1, 1),
            CubeDim::new_1d(UNITS),
            buffer(&param),
            buffer(&grad),
            buffer(&m),
            buffer(&v),
            buffer(&outputs[0]),
            buffer(&outputs[1]),
            buffer(&outputs[2]),
            step.beta1 as f32,
            step.beta2 as f32,
            step.decay as f32,
            (step.lr / step.bias_correction1) as f32,
            step.bias_correction2.sqrt() as f32,
            step.eps as f32,
        )
    });
    let [p, m, v] = outputs.map(Tensor::from_primitive::<Cube>);
    Some((p, m, v))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::{adamw_update, reference, AdamWStep};
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Tensor, TensorData};

    fn random(shape: [usize; 2], seed: u64, scale: f64, device: &Device) -> Tensor<2> {
        let values = Rng::new(seed).normals(shape.iter().product(), scale);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    #[test]
    fn three_updates_give_burns_values() {
        let device = Device::cpu();
        let shape = [37, 53];
        let (mut ours, mut theirs) = {
            let p = random(shape, 1, 1.0, &device);
            let zeros = p.zeros_like();
            ((p.clone(), zeros.clone(), zeros.clone()), (p, zeros.clone(), zeros))
        };
        for t in 1..=3 {
            let grad = random(shape, 10 + t, 0.1, &device);
            let (beta1, beta2) = (0.9f64, 0.95f64);
            let step = AdamWStep {
                lr: 1e-3 * t as f64,
                beta1,
                beta2,
                eps: 1e-8,
                decay: 1.0 - 1e-3 * t as f64 * 0.1,
                bias_correction1: 1.0 - beta1.powi(t as i32),
                bias_correction2: 1.0 - beta2.powi(t as i32),
            };
            ours = adamw_update(&ours.0, &grad, &ours.1, &ours.2, step).expect("a Cube device");
            theirs = reference::adamw_update(theirs.0, &grad, theirs.1, theirs.2, step);
        }
        let data = |(p, m, v): (Tensor<2>, Tensor<2>, Tensor<2>)| [p.into_data(), m.into_data(), v.into_data()];
        assert_all_close(&["param", "m", "v"], &data(ours), &data(theirs), 1e-6, "three steps");
    }

    #[test]
    fn mismatched_operands_are_declined() {
        let device = Device::cpu();
        let p = random([4, 5], 1, 1.0, &device);
        let step = AdamWStep { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1.0, bias_correction1: 0.1, bias_correction2: 0.001 };
        assert!(adamw_update(&p, &random([5, 4], 2, 1.0, &device), &p, &p, step).is_none());
    }
}
