//! Lexical faithfulness: is each claim of the answer supported by the item's context?
//!
//! Claims are the answer's sentences, split again at clause boundaries (";", "but", ", and", ...)
//! where both sides still say something; a sentence too small to be a claim ("Sure!") joins the
//! next. Conversational framing is no claim: openers ("Based on the context:", "Sure!") and
//! closers ("Let me know if ...") are cut from a claim before its words and negations are read
//! (see [`text::unframed`]); a clause that is only framing joins the next claim (or the last one)
//! as a tiny sentence does, so the record still shows it. A disclaimer ("I'm not sure", "I don't
//! know") stays part of its claim, but its negation is not read as the claim's. An answer of
//! framing and disclaimers alone ("Sure!", "I don't know.") makes no claim. A claim's support
//! (0..1) is the share of its content words, weighted by rarity in the
//! context, found in the best window of a few consecutive context sentences. Words meet by a light
//! stem, or failing that by Jaro-Winkler similarity for variants and typos, which then earn their
//! similarity as partial credit. Words found only outside the window earn part of the credit: a
//! claim may fuse distant sentences, but a local match is better evidence. Lexical overlap is
//! blind exactly where a claim is most often wrong, so two checks override it: a number the
//! context lacks, and a negation on one side only (claim vs. the sentence it restates), each
//! halve the support. Score: 1 + 4 × supported / claims on the spec's 1–5 scale; `support` is the
//! continuous value for ranking. Deterministic and offline.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::text;

/// A claim counts as supported when its support reaches this: three quarters of what it says
/// found in the context (a claim with a wrong number or a flipped negation never does).
pub const SUPPORT_THRESHOLD: f64 = 0.75;

/// Consecutive context sentences a claim is matched against: enough for a claim that fuses two or
/// three neighbouring sentences, few enough that the match stays evidence for the claim.
const WINDOW_SENTENCES: usize = 3;
/// A clause or sentence with less [`text::substance`] than this is no claim of its own ("Yes!",
/// "tumbling, dance, and stunting").
const MIN_CLAIM_SUBSTANCE: usize = 2;
/// Jaro-Winkler similarity from which two stems are variants of one word.
const FUZZY_THRESHOLD: f64 = 0.9;
/// Shorter stems are too easily near each other to be matched fuzzily ("cat", "car").
const FUZZY_MIN_CHARS: usize = 5;
/// The credit for a claim word the context carries only outside the claim's best window.
const OUTSIDE_WINDOW_CREDIT: f64 = 0.75;
/// Support is multiplied by this for each number of the claim the context lacks...
const NUMBER_PENALTY: f64 = 0.5;
/// ...and by this when the claim and the sentence it restates disagree on a negation.
const NEGATION_PENALTY: f64 = 0.5;
/// Context windows in the per-claim details are cut to about this many characters.
const WINDOW_CHARS: usize = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Faithfulness {
    /// 1 + 4 × supported / claims.
    pub score: f64,
    pub claims: usize,
    pub supported: usize,
    /// The continuous support of the whole answer (0..1), for ranking and trends: the mean of the
    /// lowest claim support and the average claim support, so one unsupported claim pulls the
    /// answer down without erasing the rest. `None` from the judge and in old result files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<f64>,
    /// One entry per claim, in answer order (the lexical scorer only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ClaimSupport>,
}

/// The evidence for one claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimSupport {
    pub claim: String,
    /// 0..1; supported when at least [`SUPPORT_THRESHOLD`].
    pub support: f64,
    pub supported: bool,
    /// Index into the item's context of the passage holding the best matching window.
    pub passage: usize,
    /// The best matching window of context sentences, cut to about 300 characters.
    pub window: String,
    /// The claim's words and numbers found nowhere in the context.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// The claim and the context sentence it restates disagree on a negation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negation_mismatch: bool,
}

/// `None` when the answer makes no claim (e.g. empty), so there is nothing to score.
pub fn lexical_faithfulness(answer: &str, context: &[String]) -> Option<Faithfulness> {
    let claims = claims(answer);
    if claims.is_empty() {
        return None;
    }
    let ctx = Context::new(context);
    let details: Vec<ClaimSupport> = claims
        .into_iter()
        .map(|(claim, content)| ctx.support(claim, &content))
        .collect();
    let claims = details.len();
    let supported = details.iter().filter(|d| d.supported).count();
    let mean = details.iter().map(|d| d.support).sum::<f64>() / claims as f64;
    let min = details.iter().map(|d| d.support).fold(1.0, f64::min);
    Some(Faithfulness {
        score: 1.0 + 4.0 * supported as f64 / claims as f64,
        claims,
        supported,
        support: Some((min + mean) / 2.0),
        details,
    })
}

/// What a claim says: its keys, and the text its negations are read from (without framing and
/// disclaimers: "I'm not sure, but ..." denies nothing of the claim).
struct Content<'a> {
    text: Cow<'a, str>,
    keys: Vec<Key>,
    /// The claim says nothing but a disclaimer ("I'm not sure").
    disclaimer: bool,
}

/// The answer's claims, each with what it says. A clause without a content word or number once
/// its framing is cut ("Let me know if you have any other questions.") is no claim: it joins the
/// next claim, or the last one at the end, so the record shows it. An answer whose claims are all
/// disclaimers makes no claim.
fn claims(answer: &str) -> Vec<(&str, Content<'_>)> {
    let offset = |s: &str| s.as_ptr() as usize - answer.as_ptr() as usize;
    let mut out: Vec<(&str, Content)> = Vec::new();
    let mut pending: Option<usize> = None;
    for clause in statements(answer)
        .into_iter()
        .flat_map(|s| text::clauses(s, MIN_CLAIM_SUBSTANCE))
    {
        let (text, disclaimers) = text::unframed(clause);
        let mut keys = claim_keys(&text);
        let disclaimer = keys.is_empty() && !disclaimers.is_empty();
        if !disclaimers.is_empty() {
            // A disclaimer's words are the claim's as before; only its negation is set apart.
            let mut all = claim_keys(&disclaimers.join(" "));
            all.retain(|k| !keys.iter().any(|c| c.key == k.key));
            all.append(&mut keys);
            keys = all;
        }
        if keys.is_empty() {
            pending.get_or_insert(offset(clause));
            continue;
        }
        let start = pending.take().unwrap_or_else(|| offset(clause));
        let claim = &answer[start..offset(clause) + clause.len()];
        let content = Content {
            text,
            keys,
            disclaimer,
        };
        out.push((claim, content));
    }
    if pending.is_some()
        && let Some((last, _)) = out.last_mut()
    {
        *last = &answer[offset(last)..answer.trim_end().len()];
    }
    if out.iter().all(|(_, c)| c.disclaimer) {
        out.clear();
    }
    out
}

/// The answer's sentences, each too small to be a claim ("Sure!", "I agree.") joined to the next
/// one (or the last one, at the end): alone it would be an unsupported claim about nothing,
/// dropped it would hide what it adds.
fn statements(answer: &str) -> Vec<&str> {
    let offset = |s: &str| s.as_ptr() as usize - answer.as_ptr() as usize;
    let mut out: Vec<&str> = Vec::new();
    let mut pending: Option<usize> = None;
    for s in text::sentences(answer) {
        let start = pending.take().unwrap_or_else(|| offset(s));
        let span = &answer[start..offset(s) + s.len()];
        if text::substance(span) < MIN_CLAIM_SUBSTANCE {
            pending = Some(start);
        } else {
            out.push(span);
        }
    }
    if let Some(start) = pending {
        let end = answer.trim_end().len();
        match out.pop() {
            Some(last) => out.push(&answer[offset(last)..end]),
            None => out.push(&answer[start..end]),
        }
    }
    out
}

/// A claim's word (by stem) or number (normalised), with its spelling to report when missing.
struct Key {
    key: String,
    number: bool,
    surface: String,
}

fn claim_keys(claim: &str) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::new();
    for t in text::match_tokens(claim) {
        let (key, number) = if t.chars().any(|c| c.is_ascii_digit()) {
            (t.clone(), true)
        } else if let Some(d) = text::number_word(&t).filter(|_| t != "one") {
            // "one" is as often a pronoun ("one of the ...") as a quantity.
            (d.to_owned(), true)
        } else if text::is_function_word(&t) {
            continue;
        } else {
            (text::stem(&t), false)
        };
        if !keys.iter().any(|k| k.key == key) {
            keys.push(Key {
                key,
                number,
                surface: t,
            });
        }
    }
    keys
}

struct Sentence<'a> {
    passage: usize,
    text: &'a str,
}

/// The context's sentences and an index from each word stem or number to the sentences that
/// hold it.
struct Context<'a> {
    sentences: Vec<Sentence<'a>>,
    index: HashMap<String, Vec<usize>>,
    /// `[start, end)` sentence ranges, each inside one passage.
    windows: Vec<(usize, usize)>,
}

impl<'a> Context<'a> {
    fn new(context: &'a [String]) -> Self {
        let mut sentences = Vec::new();
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        let mut windows = Vec::new();
        for (passage, text) in context.iter().enumerate() {
            let first = sentences.len();
            for s in text::sentences(text) {
                let id = sentences.len();
                let mut add = |key: String| {
                    let ids = index.entry(key).or_default();
                    if ids.last() != Some(&id) {
                        ids.push(id);
                    }
                };
                for t in text::match_tokens(s) {
                    if t.chars().any(|c| c.is_ascii_digit()) {
                        add(t);
                        continue;
                    }
                    if let Some(d) = text::number_word(&t) {
                        add(d.to_owned());
                    }
                    if !text::is_function_word(&t) {
                        add(text::stem(&t));
                    }
                }
                sentences.push(Sentence { passage, text: s });
            }
            let end = sentences.len();
            if end > first {
                let last_start = end.saturating_sub(WINDOW_SENTENCES).max(first);
                windows.extend((first..=last_start).map(|a| (a, (a + WINDOW_SENTENCES).min(end))));
            }
        }
        Context {
            sentences,
            index,
            windows,
        }
    }

    /// Rare in the context means telling: 1 + ln(sentences / sentences holding the word); a word
    /// the context lacks weighs like the rarest one.
    fn weight(&self, key: &str) -> f64 {
        let df = self.index.get(key).map_or(1, Vec::len).max(1);
        1.0 + (self.sentences.len().max(1) as f64 / df as f64).ln()
    }

    fn support(&self, claim: &str, content: &Content) -> ClaimSupport {
        let keys = &content.keys;
        let n = self.sentences.len();
        // credit[k * n + s]: how well sentence s carries key k (1 exact, the similarity when
        // fuzzy, else 0).
        let mut credit = vec![0.0_f64; keys.len() * n];
        for (k, key) in keys.iter().enumerate() {
            let row = &mut credit[k * n..(k + 1) * n];
            if let Some(ids) = self.index.get(&key.key) {
                for &s in ids {
                    row[s] = 1.0;
                }
                continue;
            }
            // Only a word the context does not carry as such is looked for as a variant.
            if key.number || key.key.chars().count() < FUZZY_MIN_CHARS {
                continue;
            }
            for (word, ids) in &self.index {
                if word.chars().any(|c| c.is_ascii_digit())
                    || word.chars().count() < FUZZY_MIN_CHARS
                {
                    continue;
                }
                let sim = strsim::jaro_winkler(&key.key, word);
                if sim >= FUZZY_THRESHOLD {
                    for &s in ids {
                        row[s] = row[s].max(sim);
                    }
                }
            }
        }
        let weights: Vec<f64> = keys.iter().map(|k| self.weight(&k.key)).collect();
        let total: f64 = weights.iter().sum();
        let anywhere: Vec<f64> = (0..keys.len())
            .map(|k| {
                credit[k * n..(k + 1) * n]
                    .iter()
                    .copied()
                    .fold(0.0, f64::max)
            })
            .collect();
        let local = |k: usize, a: usize, b: usize| {
            credit[k * n + a..k * n + b]
                .iter()
                .copied()
                .fold(0.0, f64::max)
        };

        let mut best: Option<(f64, usize, usize)> = None;
        for &(a, b) in &self.windows {
            let covered: f64 = (0..keys.len())
                .map(|k| weights[k] * local(k, a, b).max(OUTSIDE_WINDOW_CREDIT * anywhere[k]))
                .sum();
            let coverage = covered / total;
            if best.is_none_or(|(c, _, _)| coverage > c) {
                best = Some((coverage, a, b));
            }
        }
        let Some((coverage, a, b)) = best else {
            return ClaimSupport {
                claim: claim.to_owned(),
                support: 0.0,
                supported: false,
                passage: 0,
                window: String::new(),
                missing: keys.iter().map(|k| k.surface.clone()).collect(),
                negation_mismatch: false,
            };
        };

        let missing_numbers = keys
            .iter()
            .zip(&anywhere)
            .filter(|(k, found)| k.number && **found == 0.0)
            .count();
        let mut support = coverage * NUMBER_PENALTY.powi(missing_numbers as i32);

        // The sentence of the window that carries most of the claim.
        let focus = (a..b)
            .map(|s| {
                let carried: f64 = (0..keys.len())
                    .map(|k| weights[k] * credit[k * n + s])
                    .sum();
                (s, carried)
            })
            .fold((a, -1.0), |acc, x| if x.1 > acc.1 { x } else { acc })
            .0;
        // A negation counts where it is about the claim: the words it denies (its scope) are in
        // the sentence the claim restates (claim side) or in the claim (context side). "Cannot be
        // returned" contradicts "can be returned", but a "not" elsewhere in a long sentence says
        // nothing about the claim. Either side's negation, however phrased, answers the other's.
        // The claim's framing is no part of it: "I'm not sure, but ..." denies nothing.
        let claim_scopes = text::negations(&content.text);
        let focus_text = self.sentences[focus].text;
        let focus_scopes = text::negations(focus_text);
        let focus_has = |w: &String| {
            self.index
                .get(&text::stem(w))
                .is_some_and(|ids| ids.binary_search(&focus).is_ok())
        };
        let claim_has = |w: &String| {
            let stem = text::stem(w);
            keys.iter().any(|k| k.key == stem)
        };
        let negation_mismatch = (focus_scopes.is_empty()
            && claim_scopes.iter().flatten().any(focus_has))
            || (claim_scopes.is_empty() && focus_scopes.iter().flatten().any(claim_has));
        if negation_mismatch {
            support *= NEGATION_PENALTY;
        }

        let window = self.sentences[a..b]
            .iter()
            .map(|s| s.text)
            .collect::<Vec<_>>()
            .join(" ");
        ClaimSupport {
            claim: claim.to_owned(),
            support,
            supported: support >= SUPPORT_THRESHOLD,
            passage: self.sentences[a].passage,
            window: text::ellipsize(&window, WINDOW_CHARS),
            missing: keys
                .iter()
                .zip(&anywhere)
                .filter(|(_, found)| **found == 0.0)
                .map(|(k, _)| k.surface.clone())
                .collect(),
            negation_mismatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(passages: &[&str]) -> Vec<String> {
        passages.iter().map(|p| (*p).to_owned()).collect()
    }

    fn claim_texts(answer: &str) -> Vec<&str> {
        claims(answer).into_iter().map(|(c, _)| c).collect()
    }

    /// Rows of a BEGIN fixture file: (knowledge, response, fully attributable).
    fn begin_rows(file: &str) -> Vec<(String, String, bool)> {
        let path = format!(
            "{}/tests/fixtures/faithfulness/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let tsv = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the BEGIN fixture {path} is readable: {e}"));
        let mut lines = tsv.lines();
        let header: Vec<&str> = lines
            .next()
            .expect("a header row")
            .trim_end_matches('\r')
            .split('\t')
            .collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("column {name}"))
        };
        let (k, r, l) = (col("knowledge"), col("response"), col("begin_label"));
        lines
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let f: Vec<&str> = line.trim_end_matches('\r').split('\t').collect();
                (
                    f[k].to_owned(),
                    f[r].to_owned(),
                    f[l] == "Fully attributable",
                )
            })
            .collect()
    }

    /// ROC-AUC by Mann-Whitney: the chance that a positive outranks a negative, ties counted half.
    fn roc_auc(scored: &[(f64, bool)]) -> f64 {
        let pos: Vec<f64> = scored.iter().filter(|s| s.1).map(|s| s.0).collect();
        let neg: Vec<f64> = scored.iter().filter(|s| !s.1).map(|s| s.0).collect();
        let mut wins = 0.0;
        for p in &pos {
            for n in &neg {
                wins += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (pos.len() * neg.len()) as f64
    }

    /// The plain baseline: the share of the answer's non-stopword tokens found in the context.
    fn baseline(answer: &str, context: &str) -> f64 {
        let ctx: std::collections::HashSet<String> = text::words(context).collect();
        let words: Vec<String> = text::content_words(answer).collect();
        if words.is_empty() {
            return 0.0;
        }
        words.iter().filter(|w| ctx.contains(*w)).count() as f64 / words.len() as f64
    }

    #[test]
    fn begin_wow_auc_beats_the_baseline() {
        let rows = begin_rows("begin_dev_wow.tsv");
        assert_eq!(rows.len(), 430);
        let (auc, score, base_auc) = begin_aucs(&rows);
        println!(
            "BEGIN WoW dev (in-sample): ROC-AUC support {auc:.4}, score {score:.4}, baseline {base_auc:.4}"
        );
        assert!(auc >= 0.95, "ROC-AUC {auc:.4} < 0.95");
        assert!(auc > base_auc, "ROC-AUC {auc:.4} <= baseline {base_auc:.4}");
    }

    /// ROC-AUCs on a BEGIN file: (support, score, baseline). An answer without a claim supports
    /// nothing: it ranks lowest, as the baseline does.
    fn begin_aucs(rows: &[(String, String, bool)]) -> (f64, f64, f64) {
        let (mut support, mut score, mut base) = (Vec::new(), Vec::new(), Vec::new());
        for (knowledge, response, label) in rows {
            let f = lexical_faithfulness(response, std::slice::from_ref(knowledge));
            support.push((f.as_ref().and_then(|f| f.support).unwrap_or(0.0), *label));
            score.push((f.map_or(0.0, |f| f.score), *label));
            base.push((baseline(response, knowledge), *label));
        }
        (roc_auc(&support), roc_auc(&score), roc_auc(&base))
    }

    /// The BEGIN Wizard-of-Wikipedia test split (3,607 rows) is held out: no constant, rule or word
    /// list of the scorer is chosen by looking at it; it is only checked, here, so that a change
    /// which helps on the dev split but does not carry over shows. Floors: the figures measured
    /// when conversational framing was first cut (support 0.93314, score 0.87451). The scorer
    /// before that change measured 0.93323 and 0.87472: BEGIN's raters count conversational
    /// matter against attribution, so cutting it cost a little agreement with them.
    #[test]
    fn begin_wow_test_split_held_out() {
        let rows = begin_rows("begin_test_wow.tsv");
        assert_eq!(rows.len(), 3607);
        let (support, score, base) = begin_aucs(&rows);
        println!(
            "BEGIN WoW test (held out): ROC-AUC support {support:.4}, score {score:.4}, \
             baseline {base:.4}"
        );
        assert!(
            support >= 0.9331,
            "held-out support ROC-AUC {support:.4} < 0.9331"
        );
        assert!(
            score >= 0.8745,
            "held-out score ROC-AUC {score:.4} < 0.8745"
        );
    }

    #[test]
    fn copied_sentences_score_five_and_invented_ones_lower() {
        let c = ctx(&["Refunds are issued within 5 business days."]);
        let f = lexical_faithfulness("Refunds are issued within 5 business days.", &c).unwrap();
        assert_eq!((f.score, f.claims, f.supported), (5.0, 1, 1));
        assert_eq!(f.support, Some(1.0));
        let f = lexical_faithfulness(
            "Refunds are issued within 5 business days. We also ship to Mars for free.",
            &c,
        )
        .unwrap();
        assert_eq!(f.score, 3.0);
        assert_eq!(f.details[1].missing, vec!["ship", "mars", "free"]);
    }

    #[test]
    fn empty_answers_make_no_claim() {
        let c = ctx(&["Refunds are issued within 5 business days."]);
        assert!(lexical_faithfulness("", &c).is_none());
        assert!(lexical_faithfulness("  \n ", &c).is_none());
        assert!(lexical_faithfulness("Is it?", &c).is_none());
    }

    #[test]
    fn claims_are_sentences_and_clauses_without_tiny_fragments() {
        assert_eq!(
            claim_texts("The fee is $7; it is waived for members. Labels arrive by email."),
            vec![
                "The fee is $7",
                "it is waived for members.",
                "Labels arrive by email."
            ]
        );
        assert_eq!(
            claim_texts("Returns are free, but exchanges cost $5 and they take a week."),
            vec![
                "Returns are free",
                "but exchanges cost $5",
                "and they take a week."
            ]
        );
        // A list is one claim, and so is a clause too small to stand alone.
        assert_eq!(
            claim_texts("Routines contain tumbling, dance, jumps, and stunting."),
            vec!["Routines contain tumbling, dance, jumps, and stunting."]
        );
        assert_eq!(
            claim_texts("Sure! Refunds take 5 days, and yes."),
            vec!["Sure! Refunds take 5 days, and yes."]
        );
        assert_eq!(
            claim_texts("Refunds take 5 days. Thanks!"),
            vec!["Refunds take 5 days. Thanks!"]
        );
    }

    #[test]
    fn conversational_framing_is_no_claim() {
        let c = ctx(&["We ship to Austria."]);
        let f = lexical_faithfulness("Based on the context: We ship to Austria.", &c).unwrap();
        assert_eq!((f.score, f.claims, f.supported), (5.0, 1, 1));
        assert_eq!(f.support, Some(1.0));
        // The framing stays in the record, but its words are not missing from the context.
        assert_eq!(
            f.details[0].claim,
            "Based on the context: We ship to Austria."
        );
        assert!(f.details[0].missing.is_empty());
        for answer in [
            "According to the provided context, we ship to Austria.",
            "According to the information provided, we ship to Austria.",
            "Sure! We ship to Austria.",
            "Certainly. We ship to Austria.",
            "Great question! We ship to Austria.",
            "Here's what I found: we ship to Austria.",
            "The answer is: we ship to Austria.",
            "As stated in the context, we ship to Austria.",
            "From the context, we ship to Austria.",
            "The passage says that we ship to Austria.",
            "Sure, based on the context, we ship to Austria.",
            "We ship to Austria. Let me know if you have any other questions.",
            "We ship to Austria. I hope this helps!",
            "We ship to Austria. Feel free to ask if anything else comes up.",
            "We ship to Austria. Is there anything else I can help with?",
            "Great question! Based on the context, we ship to Austria. I hope this helps!",
        ] {
            let f = lexical_faithfulness(answer, &c).unwrap();
            assert_eq!(
                (f.score, f.support, f.claims),
                (5.0, Some(1.0), 1),
                "{answer}: {:?}",
                f.details
            );
            assert_eq!(f.details[0].claim, answer);
        }
    }

    #[test]
    fn framing_does_not_excuse_an_invented_claim() {
        let c = ctx(&["We ship to Austria."]);
        let f =
            lexical_faithfulness("Based on the context, we ship to Mars for free.", &c).unwrap();
        assert_eq!(f.score, 1.0);
        assert_eq!(f.details[0].missing, vec!["mars", "free"]);
        let f = lexical_faithfulness("Sure! We also ship to Mars. I hope this helps!", &c).unwrap();
        assert_eq!(f.score, 1.0);
        assert_eq!(f.details[0].missing, vec!["mars"]);
        // A hedge that denies is no framing: "I don't think X" does not claim X.
        let f = lexical_faithfulness("I don't think we ship to Austria.", &c).unwrap();
        assert_eq!(f.score, 1.0);
        // Nor is a sentence that merely starts with an opener's word.
        let f = lexical_faithfulness("Based in Vienna, we ship to Austria.", &c).unwrap();
        assert_eq!((f.claims, f.supported), (2, 1));
        assert_eq!(f.details[0].claim, "Based in Vienna");
        assert_eq!(f.details[0].missing, vec!["based", "vienna"]);
    }

    #[test]
    fn a_negation_inside_a_disclaimer_is_no_negation_of_the_claim() {
        let c = ctx(&["Refunds take 5 days."]);
        // The disclaimer is a statement about the speaker, which the context does not carry; the
        // claim beside it is supported, and not denied.
        for answer in [
            "I'm not sure, but refunds take 5 days.",
            "I 'm not sure but refunds take 5 days .",
            "I don't know much about it, but refunds take 5 days.",
        ] {
            let f = lexical_faithfulness(answer, &c).unwrap();
            assert_eq!((f.claims, f.supported), (2, 1), "{answer}: {:?}", f.details);
            let d = &f.details[1];
            assert_eq!(d.support, 1.0, "{answer}: {d:?}");
            assert!(!d.negation_mismatch, "{answer}: {d:?}");
        }
        // In one clause, "not sure" does not deny "refunds take 5 days" either.
        let f = lexical_faithfulness("I'm not sure refunds take 5 days.", &c).unwrap();
        assert!(!f.details[0].negation_mismatch, "{:?}", f.details);
        assert_eq!(f.details[0].missing, vec!["sure"]);
        assert_eq!(f.score, 5.0);
    }

    #[test]
    fn an_answer_that_is_only_framing_makes_no_claim() {
        let c = ctx(&["Refunds are issued within 5 business days."]);
        for answer in [
            "Sure!",
            "Certainly.",
            "I don't know.",
            "I'm not sure.",
            "I 'm not sure .",
            "Great question!",
            "Let me know if you have any other questions.",
            "Sure, I don't know. I hope this helps!",
        ] {
            assert!(lexical_faithfulness(answer, &c).is_none(), "{answer}");
        }
        // A disclaimer beside a claim is a statement like any other.
        let f = lexical_faithfulness("I don't know. Refunds take 5 days.", &c).unwrap();
        assert_eq!((f.claims, f.supported), (2, 1));
    }

    #[test]
    fn a_changed_number_is_unsupported() {
        let c = ctx(&["Refunds are issued within 5 business days."]);
        let f = lexical_faithfulness("Refunds are issued within 9 business days.", &c).unwrap();
        assert_eq!(f.score, 1.0);
        assert!(f.details[0].support < SUPPORT_THRESHOLD);
        assert_eq!(f.details[0].missing, vec!["9"]);
        // Spelt-out numbers meet digits.
        let f = lexical_faithfulness("Refunds are issued within five business days.", &c).unwrap();
        assert_eq!(f.score, 5.0);
    }

    #[test]
    fn decimals_and_thousands_are_numbers_of_their_own() {
        let days = ctx(&["Shipping takes 2.5 days."]);
        let limit = ctx(&["The limit is 2,500 dollars."]);
        assert_eq!(
            lexical_faithfulness("Shipping takes 2.5 days.", &days)
                .unwrap()
                .score,
            5.0
        );
        assert_eq!(
            lexical_faithfulness("The limit is 2500 dollars.", &limit)
                .unwrap()
                .score,
            5.0
        );
        // "2.5" is not "2,500", and neither is "25" nor "2".
        for (wrong, c) in [
            ("Shipping takes 2,500 days.", &days),
            ("Shipping takes 25 days.", &days),
            ("Shipping takes 2 days.", &days),
            ("The limit is 2.5 dollars.", &limit),
            ("The limit is 2,5 dollars.", &limit),
            ("The limit is 25 dollars.", &limit),
        ] {
            let f = lexical_faithfulness(wrong, c).unwrap();
            assert_eq!(f.score, 1.0, "{wrong}");
        }
    }

    #[test]
    fn a_negation_the_context_does_not_carry_counts_against_the_claim() {
        let c = ctx(&["Refunds are issued to the original payment method."]);
        let f = lexical_faithfulness("Refunds are not issued.", &c).unwrap();
        assert!(f.details[0].negation_mismatch);
        assert_eq!(f.score, 1.0);
        // And the other way round.
        let c = ctx(&["Items marked Final Sale cannot be returned."]);
        let f = lexical_faithfulness("Final Sale items can be returned.", &c).unwrap();
        assert!(f.details[0].negation_mismatch);
        assert_eq!(f.score, 1.0);
        let f = lexical_faithfulness("Final Sale items can't be returned.", &c).unwrap();
        assert!(!f.details[0].negation_mismatch);
        assert_eq!(f.score, 5.0);
        // A "not" about something else in the sentence is no contradiction.
        let c = ctx(&["The tour was long, although there is not wide agreement on its end."]);
        let f = lexical_faithfulness("The tour was long.", &c).unwrap();
        assert!(!f.details[0].negation_mismatch);
    }

    #[test]
    fn fuzzy_matching_accepts_variants_and_typos_only() {
        let c = ctx(&["Chronic traumatic encephalopathy is a neurodegenerative disease."]);
        // A typo and a morphological variant earn (most of) the credit...
        let typo = lexical_faithfulness("Chronic traumatic encefalopathy is a disease.", &c)
            .unwrap()
            .details
            .remove(0);
        assert!(typo.missing.is_empty(), "{typo:?}");
        assert!(typo.support > 0.95 && typo.support < 1.0, "{typo:?}");
        let variant = lexical_faithfulness("Chronic traumatically caused disease.", &c)
            .unwrap()
            .details
            .remove(0);
        assert!(!variant.missing.contains(&"traumatically".to_owned()));
        // ...an unrelated word of similar length does not.
        let c = ctx(&["Refunds are issued for every order."]);
        let other = lexical_faithfulness("Returns are issued for every order.", &c)
            .unwrap()
            .details
            .remove(0);
        assert_eq!(other.missing, vec!["returns"]);
        assert!(strsim::jaro_winkler("refund", "return") < FUZZY_THRESHOLD);
        assert!(strsim::jaro_winkler("encephalopathy", "encefalopathy") >= FUZZY_THRESHOLD);
    }

    #[test]
    fn details_point_at_the_best_passage_and_window() {
        let c = ctx(&[
            "Our stores open at 9 am. Parking is free on weekends.",
            "Summit members get free return shipping. Label fees are waived for them. \
             The fee is $7 for everyone else.",
            "Gift cards never expire.",
        ]);
        let f = lexical_faithfulness(
            "Gift cards do not expire. Summit members get free return shipping.",
            &c,
        )
        .unwrap();
        assert_eq!(f.claims, 2);
        assert_eq!(f.details[0].passage, 2);
        assert_eq!(f.details[0].window, "Gift cards never expire.");
        assert!(f.details[0].supported, "{:?}", f.details[0]);
        assert_eq!(f.details[1].passage, 1);
        assert!(
            f.details[1]
                .window
                .starts_with("Summit members get free return shipping.")
        );
        assert_eq!(f.score, 5.0);
    }

    #[test]
    fn a_claim_fused_from_distant_sentences_keeps_most_credit() {
        let c = ctx(&[
            "Lumen was founded in Oslo. It sells jackets. It sells boots. It sells tents. \
             The founder is Kari Nordmann.",
        ]);
        let f = lexical_faithfulness("Kari Nordmann founded Lumen in Oslo.", &c).unwrap();
        let s = f.details[0].support;
        assert!(s > SUPPORT_THRESHOLD && s < 1.0, "{s}");
    }

    #[test]
    fn windows_are_cut_for_the_record() {
        let long = "word ".repeat(200);
        let cut = text::ellipsize(&long, WINDOW_CHARS);
        assert!(cut.chars().count() <= WINDOW_CHARS + 1 && cut.ends_with('…'));
    }

    #[test]
    fn old_records_and_judge_records_still_parse() {
        let f: Faithfulness =
            serde_json::from_str(r#"{"score": 3.0, "claims": 2, "supported": 1}"#).unwrap();
        assert_eq!((f.support, f.details.len()), (None, 0));
        let c = ctx(&["Refunds are issued within 5 business days."]);
        let f = lexical_faithfulness("Refunds are not issued within 5 business days.", &c).unwrap();
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["details"][0]["negation_mismatch"], true);
        assert!(json["details"][0].get("missing").is_none());
        let back: Faithfulness = serde_json::from_value(json).unwrap();
        assert_eq!(back.details, f.details);
    }

    /// Synthetic load: 100,000 items, 3 passages of 3 sentences each, 2–3 sentence answers.
    /// `cargo test --release --lib throughput_100k -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn throughput_100k() {
        const VOCAB: &[&str] = &[
            "refund",
            "order",
            "jacket",
            "boots",
            "delivery",
            "warehouse",
            "member",
            "summit",
            "label",
            "shipping",
            "exchange",
            "size",
            "color",
            "carrier",
            "package",
            "store",
            "credit",
            "statement",
            "bank",
            "payment",
            "method",
            "inspect",
            "return",
            "window",
            "tags",
            "clearance",
            "guarantee",
            "defective",
            "standard",
            "expedited",
            "overnight",
            "tax",
            "minimum",
            "gift",
            "card",
            "recipient",
            "buyer",
            "slip",
            "number",
            "email",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let sentence = |next: &mut dyn FnMut(usize) -> usize| {
            let len = 8 + next(8);
            let mut s: Vec<String> = (0..len)
                .map(|i| match next(10) {
                    0 => format!("{}", next(100)),
                    1 | 2 => ["the", "is", "of", "within", "not", "and"][next(6)].to_owned(),
                    _ if i == 0 => "Our".to_owned(),
                    _ => VOCAB[next(VOCAB.len())].to_owned(),
                })
                .collect();
            s[0] = "The".to_owned();
            format!("{}.", s.join(" "))
        };
        let items: Vec<(Vec<String>, String)> = (0..100_000)
            .map(|_| {
                let context: Vec<String> = (0..3)
                    .map(|_| {
                        (0..3)
                            .map(|_| sentence(&mut next))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect();
                let answer = (0..2 + next(2))
                    .map(|_| sentence(&mut next))
                    .collect::<Vec<_>>()
                    .join(" ");
                (context, answer)
            })
            .collect();
        let start = std::time::Instant::now();
        let mut claims = 0;
        for (context, answer) in &items {
            claims += lexical_faithfulness(answer, context).map_or(0, |f| f.claims);
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "throughput_100k: {} items ({claims} claims) in {secs:.2} s = {:.0} items/s",
            items.len(),
            items.len() as f64 / secs
        );
    }
}
