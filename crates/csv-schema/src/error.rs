/// Why a report CSV could not be read. Messages name the line (1-based, counting the
/// header as line 1), the column by name and number, and the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// The header row is missing or unusable.
    #[error("header: {problem}")]
    Header {
        /// What is wrong with it.
        problem: String,
    },
    /// A record is malformed as CSV (wrong number of fields, invalid UTF-8, bad quoting).
    #[error("line {line}: {problem}")]
    Record {
        /// Line where the record starts.
        line: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// A cell does not hold a value of its column's type.
    #[error("line {line}, column {index} `{column}`: {problem} (value: {value:?})")]
    Cell {
        /// Line where the record starts.
        line: u64,
        /// 1-based column number.
        index: usize,
        /// Column name from the header.
        column: String,
        /// The cell's value, cut to at most 80 characters.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Reading the underlying file failed.
    #[error("reading CSV: {0}")]
    Io(#[from] std::io::Error),
}

impl CsvError {
    pub(crate) fn cell(line: u64, index: usize, column: &str, value: &str, problem: impl Into<String>) -> Self {
        let value = match value.char_indices().nth(80) {
            Some((cut, _)) => format!("{}…", &value[..cut]),
            None => value.to_owned(),
        };
        CsvError::Cell {
            line,
            index: index + 1,
            column: column.to_owned(),
            value,
            problem: problem.into(),
        }
    }

    /// `line`: where the failing record starts.
    pub(crate) fn from_csv(err: csv::Error, line: u64) -> Self {
        let message = err.to_string();
        match err.into_kind() {
            csv::ErrorKind::Io(e) => CsvError::Io(e),
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => CsvError::Record {
                line,
                problem: format!("expected {expected_len} fields as in the header, found {len}"),
            },
            csv::ErrorKind::Utf8 { err, .. } => CsvError::Record {
                line,
                problem: format!("field {} is not valid UTF-8", err.field() + 1),
            },
            _ => CsvError::Record { line, problem: message },
        }
    }
}
