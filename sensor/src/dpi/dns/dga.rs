//! A documented, conservative DGA (domain generation algorithm) heuristic standing in for
//! nDPI's `ndpi_check_dga_name` (which is bigram-based too). It looks at the longest label of
//! the name, leaving out `www` and the TLD, and flags it when:
//! 1. it is a long (>= 32) hex string (encoded data, DNS tunnelling), or
//! 2. letter pairs that are rare in English outnumber common ones (at least 5 rare pairs) and
//!    digits are mixed in, or
//! 3. it is long (>= 18), holds at least two digits and at least 4 rare pairs.
//!
//! Names with `-` or `_`, reverse-lookup (`.arpa`) and `.local` names, and names without a dot
//! are never flagged (as in nDPI); callers also skip names a host list already knows.

/// The most frequent English letter pairs (a pair not in this list is "rare").
const COMMON_BIGRAMS: &[&str] = &[
    "ab", "ac", "ad", "ae", "af", "ag", "ah", "ai", "aj", "ak", "al", "am", "an", "ap", "ar", "as",
    "at", "au", "av", "aw", "ax", "ay", "az", "ba", "bb", "be", "bh", "bi", "bl", "bo", "br", "bs",
    "bt", "bu", "by", "ca", "cc", "ce", "ch", "ci", "ck", "cl", "co", "cr", "cs", "ct", "cu", "cy",
    "da", "dd", "de", "dg", "di", "dl", "dm", "do", "dr", "ds", "du", "dv", "dy", "ea", "eb", "ec",
    "ed", "ee", "ef", "eg", "eh", "ei", "ek", "el", "em", "en", "eo", "ep", "eq", "er", "es", "et",
    "eu", "ev", "ew", "ex", "ey", "fa", "fe", "ff", "fi", "fl", "fo", "fr", "ft", "fu", "ga", "ge",
    "gg", "gh", "gi", "gl", "gn", "go", "gr", "gs", "gt", "gu", "gy", "ha", "he", "hi", "hl", "hm",
    "hn", "ho", "hr", "hs", "ht", "hu", "hy", "ia", "ib", "ic", "id", "ie", "if", "ig", "ii", "ik",
    "il", "im", "in", "io", "ip", "iq", "ir", "is", "it", "iu", "iv", "ix", "iz", "ja", "je", "jo",
    "ju", "ka", "ke", "ki", "kl", "kn", "ks", "la", "lb", "lc", "ld", "le", "lf", "li", "lk", "ll",
    "lm", "lo", "lp", "ls", "lt", "lu", "lv", "lw", "ly", "ma", "mb", "me", "mi", "mm", "mo", "mp",
    "ms", "mu", "my", "na", "nc", "nd", "ne", "nf", "ng", "nh", "ni", "nj", "nk", "nl", "nm", "nn",
    "no", "ns", "nt", "nu", "nv", "ny", "oa", "ob", "oc", "od", "oe", "of", "og", "oh", "oi", "ok",
    "ol", "om", "on", "oo", "op", "or", "os", "ot", "ou", "ov", "ow", "ox", "oy", "pa", "pe", "ph",
    "pi", "pl", "pm", "po", "pp", "pr", "ps", "pt", "pu", "py", "qu", "ra", "rb", "rc", "rd", "re",
    "rf", "rg", "rh", "ri", "rk", "rl", "rm", "rn", "ro", "rp", "rr", "rs", "rt", "ru", "rv", "rw",
    "ry", "sa", "sc", "se", "sf", "sh", "si", "sk", "sl", "sm", "so", "sp", "ss", "st", "su", "sw",
    "sy", "ta", "tb", "tc", "te", "th", "ti", "tl", "tm", "to", "tr", "ts", "tt", "tu", "tw", "ty",
    "ua", "ub", "uc", "ud", "ue", "uf", "ug", "ui", "ul", "um", "un", "uo", "up", "ur", "us", "ut",
    "va", "ve", "vi", "vo", "wa", "wd", "we", "wh", "wi", "wl", "wn", "wo", "wr", "ws", "xa", "xc",
    "xe", "xi", "xp", "xt", "ya", "yc", "yd", "ye", "yi", "yl", "ym", "yn", "yo", "yp", "ys", "yt",
    "za", "ze", "zi",
];

/// Whether `host` looks machine-generated (see the module documentation).
pub fn is_dga(host: &str) -> bool {
    let lower = host.trim_end_matches('.').to_ascii_lowercase();
    let h = lower.as_str();
    if h.is_empty()
        || h.len() > 253
        || h.contains(['-', '_'])
        || !h.contains('.')
        || std::path::Path::new(h)
            .extension()
            .is_some_and(|e| e == "arpa" || e == "local")
    {
        return false;
    }
    let mut labels = h.rsplit('.');
    labels.next(); // TLD
    let Some(label) = labels
        .filter(|l| !l.eq_ignore_ascii_case("www"))
        .max_by_key(|l| l.len())
    else {
        return false;
    };
    let n = label.len();
    if n < 7 {
        return false;
    }
    let bytes = label.as_bytes();
    if n >= 32 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    let (mut rare, mut common) = (0usize, 0usize);
    for pair in bytes.windows(2) {
        if pair.iter().all(u8::is_ascii_alphabetic) {
            let p = [pair[0].to_ascii_lowercase(), pair[1].to_ascii_lowercase()];
            if COMMON_BIGRAMS.iter().any(|b| b.as_bytes() == p) {
                common += 1;
            } else {
                rare += 1;
            }
        }
    }
    (rare >= 5 && rare > common && digits >= 1) || (n >= 18 && digits >= 2 && rare >= 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_names() {
        // Flagged by nDPI in tor.pcap / bad-dns-traffic.pcap.
        for h in [
            "www.q4cyamnc6mtokjurvdclt.com",
            "www.gfu7hbxpfp.com",
            "www.e6r5p57kbafwrxj3plz.com",
            "c75900fdf525320021636f6d6d616e64202873697276696d65732900.skullseclabs.org",
        ] {
            assert!(is_dga(h), "{h}");
        }
        // Not flagged by nDPI, and ordinary names.
        for h in [
            "www.ct7ctrgb6cr7.com",
            "www.t3i3ru.com",
            "www.6gyip7tqim7sieb.com",
            "www.jmts2id.com",
            "p26-keyvalueservice.icloud.com",
            "googleads.g.doubleclick.net",
            "d3c33hcgiwev3.cloudfront.net",
            "fonts.googleapis.com",
            "e3913.cd.akamaiedge.net",
            "www.iit.cnr.it",
            "localhost",
            "60.21.149.52.in-addr.arpa",
        ] {
            assert!(!is_dga(h), "{h}");
        }
    }
}
