//! Personal data found in document text, counted by kind at ingestion for the data cards. Only
//! counts leave this module: the values are never returned, stored or logged.
//!
//! Kinds and rules (each match is counted once, in this order, and masked before the next kind
//! is looked for, so an IBAN is not also a card number):
//! - IBAN: two letters, two check digits, 11-30 letters or digits (spaces allowed in groups of
//!   four), valid under the ISO 13616 mod-97 check.
//! - payment card: 13-19 digits (spaces or hyphens allowed) passing the Luhn check.
//! - e-mail address.
//! - national identifier: US social security number (ddd-dd-dddd, not 000, 666 or 9xx in the area)
//!   and UK National Insurance number (two letters, six digits, a letter A-D).
//! - phone number: international form (+country code and 6-14 more digits, spaces, dots, hyphens
//!   or brackets between), or any 7-15 digit number right after "tel", "phone", "telephone",
//!   "mobile" or "fax". Bare digit runs are not counted: regulations are full of numbers.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How many values of each kind a text holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiCounts {
    pub email: u32,
    pub phone: u32,
    pub iban: u32,
    pub payment_card: u32,
    pub national_id: u32,
}

impl PiiCounts {
    pub fn total(&self) -> u32 {
        self.email + self.phone + self.iban + self.payment_card + self.national_id
    }

    pub fn add(&mut self, other: &PiiCounts) {
        self.email += other.email;
        self.phone += other.phone;
        self.iban += other.iban;
        self.payment_card += other.payment_card;
        self.national_id += other.national_id;
    }
}

struct Patterns {
    iban: Regex,
    card: Regex,
    email: Regex,
    ssn: Regex,
    nino: Regex,
    phone_international: Regex,
    phone_labelled: Regex,
}

#[allow(clippy::expect_used)] // The patterns are constants; a typo is caught by the first test.
fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| Patterns {
        iban: Regex::new(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b").expect("iban pattern"),
        card: Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("card pattern"),
        email: Regex::new(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
            .expect("email pattern"),
        ssn: Regex::new(r"\b(\d{3})-\d{2}-\d{4}\b").expect("ssn pattern"),
        nino: Regex::new(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b").expect("nino pattern"),
        phone_international: Regex::new(r"\+\d{1,3}(?:[ .()-]{0,2}\d){6,14}\b").expect("phone pattern"),
        phone_labelled: Regex::new(
            r"(?i)\b(?:tel|phone|telephone|mobile|fax)\.?:?\s*(\(?\d(?:[ ./()-]{0,2}\d){6,14})\b",
        )
        .expect("labelled phone pattern"),
    })
}

fn iban_valid(candidate: &str) -> bool {
    let compact: String = candidate.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder = 0u32;
    for c in tail.chars().chain(head.chars()) {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        for digit in value.to_string().chars() {
            remainder = (remainder * 10 + digit.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    remainder == 1
}

fn luhn_valid(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { *d })
        .sum();
    sum.is_multiple_of(10)
}

/// Replaces the bytes of `range` with spaces so later kinds do not match them again.
fn mask(text: &mut String, start: usize, end: usize) {
    let blank = " ".repeat(end - start);
    text.replace_range(start..end, &blank);
}

/// Counts the personal data in `text`.
pub fn scan(text: &str) -> PiiCounts {
    let p = patterns();
    let mut work = text.to_owned();
    let mut counts = PiiCounts::default();
    let take = |work: &mut String, re: &Regex, valid: &dyn Fn(&regex::Captures<'_>) -> bool| -> u32 {
        let found: Vec<(usize, usize)> = re
            .captures_iter(work)
            .filter(|c| valid(c))
            .filter_map(|c| c.get(0).map(|m| (m.start(), m.end())))
            .collect();
        for (s, e) in &found {
            mask(work, *s, *e);
        }
        u32::try_from(found.len()).unwrap_or(u32::MAX)
    };
    counts.iban = take(&mut work, &p.iban, &|c| c.get(0).is_some_and(|m| iban_valid(m.as_str())));
    counts.payment_card = take(&mut work, &p.card, &|c| c.get(0).is_some_and(|m| luhn_valid(m.as_str())));
    counts.email = take(&mut work, &p.email, &|_| true);
    counts.national_id = take(&mut work, &p.ssn, &|c| {
        c.get(1).is_some_and(|area| area.as_str() != "000" && area.as_str() != "666" && !area.as_str().starts_with('9'))
    });
    counts.national_id += take(&mut work, &p.nino, &|_| true);
    counts.phone = take(&mut work, &p.phone_international, &|_| true);
    counts.phone += take(&mut work, &p.phone_labelled, &|_| true);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_counted_once_and_checksums_reject_lookalikes() {
        let text = "Contact jane.doe@example.com or ops@bank.example.org. \
            Pay to DE89 3704 0044 0532 0130 00 (valid) not DE00 3704 0044 0532 0130 00. \
            Card 4111 1111 1111 1111 is a test card; 4111 1111 1111 1112 fails Luhn. \
            SSN 123-45-6789, not 666-12-3456. NINO AB 12 34 56 C. \
            Call +44 20 7946 0958 or tel: 030 1234567. \
            Regulation (EU) 2022/2554 of 14 December 2022, Article 28(2), 2016/679 are not personal data.";
        let c = scan(text);
        assert_eq!(c, PiiCounts { email: 2, phone: 2, iban: 1, payment_card: 1, national_id: 2 });
        assert_eq!(c.total(), 8);
    }

    #[test]
    fn regulatory_text_has_no_personal_data() {
        let text = "Article 19(4) of Regulation (EU) No 1093/2010, points 1 to 24, 2022/2554 and 2015/2366, \
            ISO 27001:2013, 10.4.2 and EUR 5 000 000 or 2 % of annual turnover, dated 16.12.2020.";
        assert_eq!(scan(text), PiiCounts::default());
    }
}
