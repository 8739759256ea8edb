//! Glob patterns on parameter names: `*` matches any run of characters (dots included),
//! `?` any one character. `*.bias` matches `0.bias` and `layers.3.bias`.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("*.bias", "0.bias"));
        assert!(matches("*.bias", "layers.3.bias"));
        assert!(!matches("*.bias", "0.weight"));
        assert!(matches("layers.?.weight", "layers.3.weight"));
        assert!(!matches("layers.?.weight", "layers.12.weight"));
        assert!(matches("*", "anything"));
        assert!(matches("0.weight", "0.weight"));
        assert!(!matches("0.weight", "10.weight"));
        assert!(matches("*w*t", "0.weight"));
    }
}
