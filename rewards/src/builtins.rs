//! Registration of this crate's rewards under their `--rewards` names.

use std::sync::Arc;

use crate::countdown::CountdownReward;
use crate::external::ExternalReward;
use crate::format::{FormatReward, TagCountReward};
use crate::math::{Fallback, MathReward};
use crate::reward::{Reward, RewardError, RewardRegistry};
use crate::shaping::{CosineLengthReward, LanguageReward, OverlongReward, RepetitionReward};

fn bad(name: &str, arg: &str, why: impl Into<String>) -> RewardError {
    RewardError::BadArgument { name: name.into(), arg: arg.into(), why: why.into() }
}

/// `args` split on ':' parsed as numbers, with defaults for the missing ones.
fn numbers<const N: usize>(name: &str, args: &str, defaults: [f64; N]) -> Result<[f64; N], RewardError> {
    let mut out = defaults;
    let parts: Vec<&str> = args.split(':').filter(|p| !p.is_empty()).collect();
    if parts.len() > N {
        return Err(bad(name, args, format!("expected at most {N} numbers")));
    }
    for (slot, part) in out.iter_mut().zip(parts) {
        *slot = part.trim().parse().map_err(|_| bad(name, part, "not a number"))?;
    }
    Ok(out)
}

fn no_args(name: &str, args: &str) -> Result<(), RewardError> {
    if args.is_empty() { Ok(()) } else { Err(bad(name, args, "takes no argument")) }
}

pub fn register_builtins(registry: &mut RewardRegistry) {
    registry.register("code", "fraction of tests passed in the sandbox (code:lang=,scoring=fraction|binary,test=,prompt=,entry_point=)", crate::code::reward::build);
    registry.register("math", "1 if the final answer equals the gold (math:last-number|whole sets the fallback)", |args| {
        let fallback: Fallback = args.parse().map_err(|e: String| bad("math", args, e))?;
        Ok(Arc::new(MathReward::new(fallback)) as Arc<dyn Reward>)
    });
    registry.register("format", "1 if <think>...</think><answer>...</answer> (lenient)", |args| {
        no_args("format", args)?;
        Ok(Arc::new(FormatReward { strict: false }) as Arc<dyn Reward>)
    });
    registry.register("format_strict", "1 if exactly <think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>", |args| {
        no_args("format_strict", args)?;
        Ok(Arc::new(FormatReward { strict: true }) as Arc<dyn Reward>)
    });
    registry.register("tag_count", "0.25 per template tag present exactly once", |args| {
        no_args("tag_count", args)?;
        Ok(Arc::new(TagCountReward) as Arc<dyn Reward>)
    });
    registry.register("countdown", "1 if the answer uses the given numbers at most once and hits the target", |args| {
        no_args("countdown", args)?;
        Ok(Arc::new(CountdownReward) as Arc<dyn Reward>)
    });
    registry.register("cosine", "cosine-scaled length by correctness (cosine:MAX_LEN, default 1000)", |args| {
        let [max_len] = numbers("cosine", args, [1000.0])?;
        if max_len <= 0.0 {
            return Err(bad("cosine", args, "max length must be positive"));
        }
        Ok(Arc::new(CosineLengthReward::new(max_len)) as Arc<dyn Reward>)
    });
    registry.register("overlong", "DAPO soft overlong punishment (overlong:MAX_LEN:CACHE, default 4096:512)", |args| {
        let [max_len, cache] = numbers("overlong", args, [4096.0, 512.0])?;
        if cache <= 0.0 || cache > max_len {
            return Err(bad("overlong", args, "need 0 < CACHE <= MAX_LEN"));
        }
        Ok(Arc::new(OverlongReward { max_len, cache }) as Arc<dyn Reward>)
    });
    registry.register("repetition", "n-gram repetition penalty (repetition:N:MAX_PENALTY, default 3:-1)", |args| {
        let [n, max_penalty] = numbers("repetition", args, [3.0, -1.0])?;
        if n < 1.0 || n.fract() != 0.0 {
            return Err(bad("repetition", args, "N must be a positive integer"));
        }
        Ok(Arc::new(RepetitionReward { ngram: n as usize, max_penalty }) as Arc<dyn Reward>)
    });
    registry.register("language", "share of the reasoning in the target script (language:en|zh|ru)", |args| {
        let script = args.parse().map_err(|e: String| bad("language", args, e))?;
        Ok(Arc::new(LanguageReward { script }) as Arc<dyn Reward>)
    });
    registry.register("external", "scores from a long-lived command (external:COMMAND, JSONL in, one number per line out)", |args| {
        Ok(Arc::new(ExternalReward::spawn(args, ExternalReward::DEFAULT_TIMEOUT)?) as Arc<dyn Reward>)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::Record;

    #[test]
    fn builds_every_builtin_and_rejects_bad_arguments() {
        let registry = RewardRegistry::with_builtins();
        for spec in ["math", "math:last-number", "format", "format_strict", "tag_count", "countdown", "cosine:500", "overlong:100:20", "repetition:4:-0.5", "language:zh"] {
            assert!(registry.build(spec).is_ok(), "{spec}");
        }
        for spec in ["math:sometimes", "cosine:abc", "overlong:10:20", "repetition:0", "language:klingon", "format:x"] {
            assert!(registry.build(spec).is_err(), "{spec}");
        }
        let composite = registry.build_weighted(&["math".into(), "format".into()], &[1.0, 0.2]).unwrap();
        let out = composite.score("<think>x</think><answer>\\boxed{4}</answer>", &Record::with_gold("4"));
        assert_eq!(out.as_map()["math"], 1.0);
        assert_eq!(out.as_map()["format"], 1.0);
        assert!((out.total - 1.2).abs() < 1e-12);
    }
}
