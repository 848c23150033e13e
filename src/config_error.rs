//! A problem in a config file, with its place (file:line:column), and how a file's problems are
//! shown: the rules config and the web config report theirs alike.

use std::fmt;

/// One problem in a config file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// `N problem(s) in WHAT:` and then each problem on its own line: how every config file's
/// problems are shown.
pub fn write_problems(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    errors: &[ConfigError],
) -> fmt::Result {
    let n = errors.len();
    writeln!(f, "{n} problem{} in {what}:", if n == 1 { "" } else { "s" })?;
    for e in errors {
        writeln!(f, "{e}")?;
    }
    Ok(())
}
