use std::collections::VecDeque;
use std::io::Read;

use csv::StringRecord;

use crate::error::CsvError;
use crate::schema::{CAMPAIGN_COLUMNS, ColumnType, Header, Schema};
use crate::value::{JsonText, Timestamp};

/// A streaming reader of one report file: reads and validates the header, then yields
/// rows one at a time, reusing one record buffer (no allocation per row).
pub struct ReportReader<R> {
    csv: csv::Reader<Lines<R>>,
    header: Header,
    record: StringRecord,
    rows: u64,
}

impl<R: Read> ReportReader<R> {
    /// Reads and validates the header. A UTF-8 byte-order mark, CRLF line ends and
    /// quoted fields with embedded newlines are all accepted.
    pub fn new(input: R) -> Result<Self, CsvError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(false)
            .from_reader(Lines::new(input));
        let mut record = StringRecord::new();
        if !csv.read_record(&mut record).map_err(|e| csv_error(&mut csv, e))? {
            return Err(CsvError::Header {
                problem: "the file is empty: no header row".to_owned(),
            });
        }
        let header = Header::new(record.iter().map(str::to_owned).collect())?;
        Ok(ReportReader {
            csv,
            header,
            record,
            rows: 0,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The schema the header follows.
    pub fn schema(&self) -> &Schema {
        self.header.schema()
    }

    /// Data rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    /// The next row as text cells, for any schema; `None` at the end of the file.
    pub fn next_raw_row(&mut self) -> Result<Option<RawRow<'_>>, CsvError> {
        if !self.read_record()? {
            return Ok(None);
        }
        let line = self.advance();
        Ok(Some(RawRow {
            line,
            record: &self.record,
        }))
    }

    /// The next row of a campaign report, typed; `None` at the end of the file.
    /// Fails on a header that is not the campaign report's, naming the first column
    /// that differs.
    pub fn next_campaign_row(&mut self) -> Result<Option<CampaignRow<'_>>, CsvError> {
        self.header.expect_campaign()?;
        if !self.read_record()? {
            return Ok(None);
        }
        let line = self.advance();
        CampaignRow::parse(line, &self.record).map(Some)
    }

    fn read_record(&mut self) -> Result<bool, CsvError> {
        self.csv
            .read_record(&mut self.record)
            .map_err(|e| csv_error(&mut self.csv, e))
    }

    /// Counts the record just read; returns the file line where it starts.
    fn advance(&mut self) -> u64 {
        self.rows += 1;
        let start = self.record.position().map(csv::Position::byte);
        self.csv.get_mut().line_of(start)
    }

    /// Reads the rest of the file, validating every row against the schema (typed for
    /// campaign reports, well-formed CSV for the others); returns the number of data rows.
    pub fn validate_to_end(&mut self) -> Result<u64, CsvError> {
        match self.header.schema() {
            Schema::Campaign { .. } => while self.next_campaign_row()?.is_some() {},
            Schema::Generic => while self.next_raw_row()?.is_some() {},
        }
        Ok(self.rows)
    }
}

/// A csv error, with the line of the record it concerns.
fn csv_error<R: Read>(csv: &mut csv::Reader<Lines<R>>, err: csv::Error) -> CsvError {
    let start = err.position().map(csv::Position::byte);
    let line = csv.get_mut().line_of(start);
    CsvError::from_csv(err, line)
}

/// Counts lines as editors do (every LF, CRLF or lone CR, inside quoted cells too) on
/// the way into the csv parser, whose own count depends on how its buffer falls. Keeps
/// the offsets of the CR and LF bytes not yet behind the current record: a few
/// kilobytes' worth.
struct Lines<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// Line ends before `breaks`.
    lines_before: u64,
    /// CR and LF bytes read and not yet passed.
    breaks: VecDeque<Break>,
    /// A CR counted and passed before the byte after it was read: if that byte is an LF,
    /// the CR was half of a CRLF and must not count.
    passed_cr: Option<u64>,
}

/// A CR or LF byte in the input.
#[derive(Clone, Copy)]
struct Break {
    /// Its offset.
    at: u64,
    /// CR, else LF.
    is_cr: bool,
    /// Whether it ends a line: an LF or a lone CR does; the CR of a CRLF does not.
    ends_line: bool,
}

impl<R> Lines<R> {
    fn new(inner: R) -> Self {
        Lines {
            inner,
            offset: 0,
            lines_before: 0,
            breaks: VecDeque::new(),
            passed_cr: None,
        }
    }

    /// The 1-based line of the first byte of a record starting at byte `start` (the csv
    /// parser starts a record at the line ends before it, so they are skipped). Calls
    /// must not go backwards; without a position, the line of the last record asked.
    fn line_of(&mut self, start: Option<u64>) -> u64 {
        let Some(start) = start else {
            return self.lines_before + 1;
        };
        while let Some(&brk) = self.breaks.front()
            && brk.at < start
        {
            self.lines_before += u64::from(brk.ends_line);
            self.breaks.pop_front();
            if brk.is_cr && brk.at + 1 == self.offset {
                self.passed_cr = Some(brk.at);
            }
        }
        // Line ends right at `start` (and after it, without a gap) precede the record.
        let skipped = (start..)
            .zip(&self.breaks)
            .take_while(|(next, brk)| brk.at == *next)
            .filter(|(_, brk)| brk.ends_line)
            .count();
        self.lines_before + 1 + skipped as u64
    }
}

impl<R: Read> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.passed_cr.is_some_and(|cr| cr + 1 < self.offset) {
            self.passed_cr = None;
        }
        // SIMD search: a record is hundreds of bytes long, so a byte-by-byte loop
        // here cost about a tenth of a validation pass.
        for i in memchr::memchr2_iter(b'\n', b'\r', &buf[..n]) {
            let b = buf[i];
            let at = self.offset + i as u64;
            if b == b'\n' {
                // The CR of a CRLF, possibly read in the previous chunk, ends no line.
                if let Some(cr) = self.breaks.back_mut()
                    && cr.is_cr
                    && cr.at + 1 == at
                {
                    cr.ends_line = false;
                } else if self.passed_cr.is_some_and(|cr| cr + 1 == at) {
                    self.lines_before = self.lines_before.saturating_sub(1);
                }
                self.breaks.push_back(Break {
                    at,
                    is_cr: false,
                    ends_line: true,
                });
            } else if b == b'\r' {
                self.breaks.push_back(Break {
                    at,
                    is_cr: true,
                    ends_line: true,
                });
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// One row as text cells, in header order.
#[derive(Debug)]
pub struct RawRow<'a> {
    /// Line where the row starts (the header is line 1).
    pub line: u64,
    record: &'a StringRecord,
}

impl<'a> RawRow<'a> {
    /// The cell in column `index` (0-based).
    pub fn get(&self, index: usize) -> Option<&'a str> {
        self.record.get(index)
    }

    /// All cells, in header order.
    pub fn cells(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.record.iter()
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.record.len()
    }

    /// Whether the row has no cells (never true for a row the reader yields).
    pub fn is_empty(&self) -> bool {
        self.record.is_empty()
    }
}

/// One typed row of the campaign report. Text borrows from the reader's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignRow<'a> {
    /// Line where the row starts (the header is line 1).
    pub line: u64,
    /// Column 1.
    pub customer_external_id: &'a str,
    /// Column 2.
    pub business_id: &'a str,
    /// Column 3.
    pub campaign_name: &'a str,
    /// Column 4.
    pub sendout_id: &'a str,
    /// Column 5.
    pub cnt_session_id: &'a str,
    /// Column 6.
    pub sent_at: Option<Timestamp<'a>>,
    /// Column 7.
    pub delivered_at: Option<Timestamp<'a>>,
    /// Column 8.
    pub read_at: Option<Timestamp<'a>>,
    /// Column 9.
    pub opt_out_at: Option<Timestamp<'a>>,
    /// Column 10.
    pub error_code: Option<i64>,
    /// Column 11.
    pub error_msg: Option<&'a str>,
    /// Column 12, always an array.
    pub button_clicks: Option<JsonText<'a>>,
    /// Column 13, always an array.
    pub link_clicks: Option<JsonText<'a>>,
    /// Column 14.
    pub input_variables: Option<JsonText<'a>>,
    /// Column 15.
    pub output_variables: Option<JsonText<'a>>,
    record: &'a StringRecord,
}

impl<'a> CampaignRow<'a> {
    fn parse(line: u64, record: &'a StringRecord) -> Result<Self, CsvError> {
        let cell = |i: usize| record.get(i).unwrap_or("");
        let opt = |i: usize| Some(cell(i)).filter(|s| !s.is_empty());
        let fail = |i: usize, problem: String| CsvError::cell(line, i, CAMPAIGN_COLUMNS[i].name, cell(i), problem);
        let ts = |i: usize| -> Result<Option<Timestamp<'a>>, CsvError> {
            debug_assert_eq!(CAMPAIGN_COLUMNS[i].kind, ColumnType::Timestamp);
            opt(i)
                .map(Timestamp::parse)
                .transpose()
                .map_err(|p| fail(i, p.to_owned()))
        };
        let int = |i: usize| -> Result<Option<i64>, CsvError> {
            opt(i)
                .map(|s| s.trim().parse::<i64>())
                .transpose()
                .map_err(|_| fail(i, "expected an integer".to_owned()))
        };
        let array = |i: usize| opt(i).map(JsonText::parse_array).transpose().map_err(|p| fail(i, p));
        let object = |i: usize| opt(i).map(JsonText::parse_object).transpose().map_err(|p| fail(i, p));
        Ok(CampaignRow {
            line,
            customer_external_id: cell(0),
            business_id: cell(1),
            campaign_name: cell(2),
            sendout_id: cell(3),
            cnt_session_id: cell(4),
            sent_at: ts(5)?,
            delivered_at: ts(6)?,
            read_at: ts(7)?,
            opt_out_at: ts(8)?,
            error_code: int(9)?,
            error_msg: opt(10),
            button_clicks: array(11)?,
            link_clicks: array(12)?,
            input_variables: object(13)?,
            output_variables: object(14)?,
            record,
        })
    }

    /// Cells of the columns after the documented 15, in header order (see
    /// [`Schema::Campaign::extra_columns`] for their names).
    pub fn extra_cells(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.record.iter().skip(CAMPAIGN_COLUMNS.len())
    }
}
