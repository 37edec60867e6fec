//! Generator properties over many seeds: solvable Countdown problems accepted by the checker,
//! exact arithmetic, traces that end in the right answer at error rate 0 and wrong at about p.

use r1kit_datasets::expr::{CountdownError, check_countdown, evaluate};
use r1kit_datasets::generators::{self, Generator, SplitFilter, TraceOptions, TraceStyle};
use r1kit_datasets::{Gold, Split, split_of};

fn countdown(options: &[(&str, &str)]) -> Generator {
    let mut g = Generator::by_name("countdown").unwrap();
    for (k, v) in options {
        g.set(k, v).unwrap();
    }
    g
}

#[test]
fn every_countdown_problem_is_solved_by_its_own_solution() {
    for (count, numbers, target) in [("3", "1..20", "1..50"), ("4", "1..99", "1..100"), ("5", "1..50", "100..500")] {
        let g = countdown(&[("count", count), ("numbers", numbers), ("target", target)]);
        for seed in 0..5 {
            for p in generators::generate(&g, 200, seed, None).unwrap() {
                let Gold::Countdown { numbers, target } = &p.gold else { panic!() };
                assert_eq!(numbers.len(), count.parse::<usize>().unwrap());
                let solution = p.answer();
                check_countdown(&solution, numbers, *target, true)
                    .unwrap_or_else(|e| panic!("{}: {solution} rejected: {e}", p.prompt));
            }
        }
    }
}

#[test]
fn countdown_checker_rejects_what_the_rules_forbid() {
    let numbers = [44, 19, 35, 2];
    assert!(check_countdown("(44 + 19 - 35) * 2", &numbers, 56, true).is_ok());
    assert!(check_countdown("(44 + 19 - 35) * 2", &numbers, 57, false).is_err());
    assert_eq!(check_countdown("44 + 44", &numbers, 88, false), Err(CountdownError::NumberNotAvailable(44)));
    assert_eq!(check_countdown("19 + 35 + 2", &numbers, 56, true), Err(CountdownError::NotAllUsed { used: 3, given: 4 }));
    assert!(check_countdown("19 + 35 + 2", &numbers, 56, false).is_ok());
    // Exact rationals: 35 / 2 is not truncated.
    assert!(check_countdown("35 / 2 * 4", &[35, 2, 4], 70, true).is_ok());
    assert!(check_countdown("44 / (19 - 19)", &[44, 19, 19], 1, false).is_err());
    assert!(check_countdown("44 +", &numbers, 44, false).is_err());
}

#[test]
fn arithmetic_golds_equal_the_exact_value_of_the_expression() {
    for ops in ["+-", "+-*", "+-*/"] {
        for digits in ["1", "2", "3"] {
            let mut g = Generator::by_name("arithmetic").unwrap();
            g.set("ops", ops).unwrap();
            g.set("digits", digits).unwrap();
            g.set("terms", "4").unwrap();
            for p in generators::generate(&g, 100, 7, None).unwrap() {
                let expression = p.prompt.strip_prefix("Compute ").unwrap().strip_suffix('.').unwrap();
                let (value, _) = evaluate(expression).unwrap();
                let Gold::Answer { answer } = &p.gold else { panic!() };
                assert_eq!(&value.to_string(), answer, "{expression}");
            }
        }
    }
}

#[test]
fn traces_without_errors_end_in_the_right_answer() {
    for name in Generator::NAMES {
        let g = Generator::by_name(name).unwrap();
        for seed in 0..4 {
            let problems = generators::generate(&g, 150, seed, None).unwrap();
            for style in [TraceStyle::Compact, TraceStyle::Verbose] {
                let traces = generators::traces(&problems, &TraceOptions { error_rate: 0.0, style }, seed);
                for (p, t) in problems.iter().zip(&traces) {
                    assert_eq!(t.correct, Some(true));
                    match &p.gold {
                        Gold::Countdown { numbers, target } => {
                            check_countdown(&t.answer, numbers, *target, true).unwrap();
                            assert!(t.reasoning.ends_with(&format!("={target}")) || t.reasoning.contains(&format!("= {target}.")));
                        }
                        Gold::Answer { answer } => {
                            assert_eq!(&t.answer, answer);
                            let last = t.reasoning.lines().last().unwrap();
                            assert!(last.contains(&format!("={answer}")) || last.contains(&format!("= {answer}.")), "{last}");
                        }
                        Gold::Code { .. } => unreachable!(),
                    }
                    let full = t.r1_completion();
                    assert!(full.starts_with("<think>\n") && full.ends_with("</answer>"));
                }
            }
        }
    }
}

#[test]
fn compact_traces_are_short_lines_of_steps() {
    let g = Generator::by_name("countdown").unwrap();
    let problems = generators::generate(&g, 100, 3, None).unwrap();
    for t in generators::traces(&problems, &TraceOptions::default(), 3) {
        let lines: Vec<&str> = t.reasoning.lines().collect();
        assert_eq!(lines.len(), 3, "4 numbers take 3 steps");
        assert!(lines.iter().all(|l| l.len() <= 16 && l.contains('=')), "{lines:?}");
    }
}

#[test]
fn traces_with_error_rate_p_are_wrong_about_p_of_the_time() {
    for name in Generator::NAMES {
        let g = Generator::by_name(name).unwrap();
        let problems = generators::generate(&g, 2000, 11, None).unwrap();
        for p in [0.1, 0.3] {
            let traces = generators::traces(&problems, &TraceOptions { error_rate: p, style: TraceStyle::Compact }, 11);
            let mut wrong = 0;
            for (problem, t) in problems.iter().zip(&traces) {
                // Judge with the exact checkers, not the trace's own flag.
                let right = match &problem.gold {
                    Gold::Countdown { numbers, target } => check_countdown(&t.answer, numbers, *target, false).is_ok(),
                    Gold::Answer { answer } => &t.answer == answer,
                    Gold::Code { .. } => unreachable!(),
                };
                assert_eq!(t.correct, Some(right));
                wrong += !right as usize;
            }
            let fraction = wrong as f64 / traces.len() as f64;
            assert!((fraction - p).abs() < 0.035, "{name}: error rate {p} gave {fraction}");
        }
    }
}

#[test]
fn generation_is_deterministic_and_seeds_differ() {
    let g = Generator::by_name("word").unwrap();
    let a = generators::generate(&g, 50, 5, None).unwrap();
    let b = generators::generate(&g, 50, 5, None).unwrap();
    let c = generators::generate(&g, 50, 6, None).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Pinned text: the PRNG is our own, so this holds on every platform.
    let first = &generators::generate(&Generator::by_name("countdown").unwrap(), 1, 1, None).unwrap()[0];
    assert_eq!(first.prompt, PINNED_COUNTDOWN_SEED_1);
}

const PINNED_COUNTDOWN_SEED_1: &str = include_str!("pinned_countdown_seed1.txt");

#[test]
fn generated_problems_are_distinct() {
    let g = Generator::by_name("arithmetic").unwrap();
    let problems = generators::generate(&g, 3000, 2, None).unwrap();
    let mut prompts: Vec<&str> = problems.iter().map(|p| p.prompt.as_str()).collect();
    prompts.sort();
    prompts.dedup();
    assert_eq!(prompts.len(), 3000);
}

#[test]
fn train_and_heldout_generations_share_no_problem() {
    for name in Generator::NAMES {
        let g = Generator::by_name(name).unwrap();
        let filter = |split| Some(SplitFilter { split, heldout_fraction: 0.2, salt: 0 });
        // Different seeds on purpose: the split depends on the text, not on the seed.
        let train = generators::generate(&g, 2000, 1, filter(Split::Train)).unwrap();
        let heldout = generators::generate(&g, 300, 2, filter(Split::HeldOut)).unwrap();
        let train_texts: std::collections::HashSet<String> =
            train.iter().map(|p| r1kit_datasets::split::normalize_problem(&p.prompt)).collect();
        assert!(heldout.iter().all(|p| !train_texts.contains(&r1kit_datasets::split::normalize_problem(&p.prompt))));
        assert!(heldout.iter().all(|p| split_of(&p.prompt, 0.2, 0) == Split::HeldOut));
    }
}
