//! The learning-rate schedule of BERT (and GluonNLP's `run_pretraining.py`): linear warmup
//! over the first `warmup_ratio · num_steps` steps, then linear decay to zero at `num_steps`.
//!
//! A pure function of the step, so a resumed run needs no scheduler state.

/// Warmup-then-decay schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    pub base_lr: f64,
    pub warmup_steps: u64,
    pub num_steps: u64,
}

impl LinearSchedule {
    /// GluonNLP's rounding: `int(num_steps * warmup_ratio)` warmup steps.
    pub fn new(base_lr: f64, warmup_ratio: f64, num_steps: u64) -> Self {
        Self {
            base_lr,
            warmup_steps: (num_steps as f64 * warmup_ratio) as u64,
            num_steps,
        }
    }

    /// The rate of optimizer step `step` (1-based, as GluonNLP counts).
    pub fn lr(&self, step: u64) -> f64 {
        let (s, w, n) = (step as f64, self.warmup_steps as f64, self.num_steps as f64);
        if step < self.warmup_steps || self.warmup_steps >= self.num_steps {
            self.base_lr * (s / w.max(1.0)).min(1.0)
        } else {
            (self.base_lr * (1.0 - (s - w) / (n - w))).max(0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_zero() {
        let s = LinearSchedule::new(1e-4, 0.1, 100);
        assert_eq!(s.warmup_steps, 10);
        assert!((s.lr(1) - 1e-5).abs() < 1e-12);
        assert!((s.lr(5) - 5e-5).abs() < 1e-12);
        assert!((s.lr(10) - 1e-4).abs() < 1e-12);
        assert!((s.lr(55) - 5e-5).abs() < 1e-12);
        assert_eq!(s.lr(100), 0.0);
        assert_eq!(s.lr(120), 0.0);
    }

    #[test]
    fn no_warmup_and_all_warmup_are_defined() {
        let s = LinearSchedule::new(1.0, 0.0, 4);
        assert_eq!([s.lr(1), s.lr(2), s.lr(4)], [0.75, 0.5, 0.0]);
        let s = LinearSchedule::new(1.0, 1.0, 4);
        assert_eq!([s.lr(1), s.lr(4)], [0.25, 1.0]);
    }
}
