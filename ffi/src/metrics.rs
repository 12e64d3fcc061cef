//! `ballot_metrics`: the process's metrics as a snapshot handle with accessors, and
//! as Prometheus text (an owned string).

use std::ffi::CString;
use std::os::raw::c_char;

use ballot::metrics::{MetricType, SampleValue, Snapshot};

use crate::boundary::{arg, out_arg};
use crate::handle::Boxed;
use crate::result::{ballot_error, ballot_result, Failure};

/// Whether a metric family counts, measures or distributes.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ballot_metric_type {
    /// Only goes up while its series lives; the name ends in `_total`.
    Counter = 1,
    /// Goes up and down.
    Gauge = 2,
    /// Observations in cumulative buckets, with their sum and count.
    Histogram = 3,
}

/// Every metric family of libballot at one moment: the series of every live client
/// and election handle of the process (names, help, types, labels and values in
/// `ballot::metrics`' table, the README's "Operating ballot").
///
/// Returned by `ballot_metrics_snapshot`, owned by the caller and freed with
/// `ballot_metrics_free`. Read it with `ballot_metrics_family_count`,
/// `ballot_metrics_family` and the sample accessors, which take indexes from 0.
/// It is immutable, so it may be read from any thread.
#[derive(Debug)]
pub struct ballot_metrics {
    families: Vec<Family>,
}

#[derive(Debug)]
struct Family {
    name: CString,
    help: CString,
    kind: ballot_metric_type,
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Sample {
    labels: Vec<(CString, CString)>,
    value: f64,
    histogram: Option<Histogram>,
}

#[derive(Debug)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl Boxed for ballot_metrics {}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

impl ballot_metrics {
    fn new(s: &Snapshot) -> ballot_metrics {
        let families = s
            .families
            .iter()
            .map(|f| Family {
                name: c_string(f.name),
                help: c_string(f.help),
                kind: match f.kind {
                    MetricType::Counter => ballot_metric_type::Counter,
                    MetricType::Histogram => ballot_metric_type::Histogram,
                    _ => ballot_metric_type::Gauge,
                },
                samples: f
                    .samples
                    .iter()
                    .map(|s| Sample {
                        labels: s.labels.iter().map(|(k, v)| (c_string(k), c_string(v))).collect(),
                        value: match &s.value {
                            SampleValue::Number(v) => *v,
                            SampleValue::Histogram(h) => h.sum,
                            _ => f64::NAN,
                        },
                        histogram: match &s.value {
                            SampleValue::Histogram(h) => Some(Histogram {
                                buckets: h.buckets.iter().map(|b| (b.le, b.count)).collect(),
                                sum: h.sum,
                                count: h.count,
                            }),
                            _ => None,
                        },
                    })
                    .collect(),
            })
            .collect();
        ballot_metrics { families }
    }

    fn family(&self, f: usize) -> Result<&Family, Failure> {
        self.families.get(f).ok_or_else(|| {
            Failure::invalid(format!("family {f} is out of range: the snapshot has {} families", self.families.len()))
        })
    }

    fn sample(&self, f: usize, s: usize) -> Result<&Sample, Failure> {
        let fam = self.family(f)?;
        fam.samples.get(s).ok_or_else(|| {
            Failure::invalid(format!("sample {s} is out of range: family {f} has {} samples", fam.samples.len()))
        })
    }

    fn histogram(&self, f: usize, s: usize) -> Result<&Histogram, Failure> {
        let fam = self.family(f)?;
        self.sample(f, s)?
            .histogram
            .as_ref()
            .ok_or_else(|| Failure::invalid(format!("family {f} ({}) is not a histogram", fam.name.to_string_lossy())))
    }
}

/// Takes a snapshot of every metric family of libballot (see `ballot_metrics`)
/// into `*out`.
///
/// Ownership: `*out` belongs to the caller; free it with `ballot_metrics_free`.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `out`. `*out` is
/// written only on success. Thread: any; it does not wait on the network.
///
/// # Safety
/// `out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_snapshot(
    out: *mut *mut ballot_metrics,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        out_arg(out, "out")?;
        let m = ballot_metrics::new(&ballot::metrics::snapshot());
        // SAFETY: `out` is writable and not NULL (checked above).
        unsafe { m.write_to(out) };
        Ok(())
    })
}

/// The number of families in the snapshot (every family is always there, possibly
/// with no sample).
///
/// NULL: returns 0. Thread: any.
///
/// # Safety
/// `metrics` is NULL or a live snapshot.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_family_count(metrics: *const ballot_metrics) -> usize {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!(0, { unsafe { ballot_metrics::borrow(metrics) }.map_or(0, |m| m.families.len()) })
}

/// Family `family` of the snapshot: its name (`*name_out`, as exposed: a
/// counter's ends in `_total`), its one-line help (`*help_out`), its type
/// (`*type_out`) and its number of samples (`*samples_out`). Any of the four
/// outputs may be NULL when not wanted.
///
/// Ownership: the strings belong to `metrics` and live as long as it does.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics`;
/// `INVALID_ARGUMENT` when `family` is not below `ballot_metrics_family_count`.
/// Outputs are written only on success. Thread: any.
///
/// # Safety
/// `metrics` is NULL or a live snapshot; the outputs and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_family(
    metrics: *const ballot_metrics,
    family: usize,
    name_out: *mut *const c_char,
    help_out: *mut *const c_char,
    type_out: *mut ballot_metric_type,
    samples_out: *mut usize,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let m = unsafe { arg(metrics, "metrics") }?;
        let f = m.family(family)?;
        unsafe {
            if !name_out.is_null() {
                *name_out = f.name.as_ptr();
            }
            if !help_out.is_null() {
                *help_out = f.help.as_ptr();
            }
            if !type_out.is_null() {
                *type_out = f.kind;
            }
            if !samples_out.is_null() {
                *samples_out = f.samples.len();
            }
        }
        Ok(())
    })
}

/// The number of labels of sample `sample` of family `family`, into `*count_out`.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics` or
/// `count_out`; `INVALID_ARGUMENT` for an index out of range. `*count_out` is
/// written only on success. Thread: any.
///
/// # Safety
/// `metrics` is NULL or a live snapshot; `count_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_sample_label_count(
    metrics: *const ballot_metrics,
    family: usize,
    sample: usize,
    count_out: *mut usize,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let m = unsafe { arg(metrics, "metrics") }?;
        out_arg(count_out, "count_out")?;
        let s = m.sample(family, sample)?;
        unsafe { *count_out = s.labels.len() };
        Ok(())
    })
}

/// Label `label` of sample `sample` of family `family`: its name (`backend`,
/// `client`, `election`, `reason`) into `*name_out` and its value into
/// `*value_out`, both NUL-terminated.
///
/// Ownership: the strings belong to `metrics` and live as long as it does.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics`,
/// `name_out` or `value_out`; `INVALID_ARGUMENT` for an index out of range.
/// Outputs are written only on success. Thread: any.
///
/// # Safety
/// `metrics` is NULL or a live snapshot; the outputs and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_sample_label(
    metrics: *const ballot_metrics,
    family: usize,
    sample: usize,
    label: usize,
    name_out: *mut *const c_char,
    value_out: *mut *const c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let m = unsafe { arg(metrics, "metrics") }?;
        out_arg(name_out, "name_out")?;
        out_arg(value_out, "value_out")?;
        let s = m.sample(family, sample)?;
        let (k, v) = s.labels.get(label).ok_or_else(|| {
            Failure::invalid(format!("label {label} is out of range: the sample has {} labels", s.labels.len()))
        })?;
        unsafe {
            *name_out = k.as_ptr();
            *value_out = v.as_ptr();
        }
        Ok(())
    })
}

/// The value of sample `sample` of family `family` into `*value_out`: a counter's
/// or a gauge's value, a histogram's sum.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics` or
/// `value_out`; `INVALID_ARGUMENT` for an index out of range. `*value_out` is
/// written only on success. Thread: any.
///
/// # Safety
/// `metrics` is NULL or a live snapshot; `value_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_sample_value(
    metrics: *const ballot_metrics,
    family: usize,
    sample: usize,
    value_out: *mut f64,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let m = unsafe { arg(metrics, "metrics") }?;
        out_arg(value_out, "value_out")?;
        let s = m.sample(family, sample)?;
        unsafe { *value_out = s.value };
        Ok(())
    })
}

/// The histogram of sample `sample` of family `family`: its number of buckets
/// (`*buckets_out`, the last one `+Inf`), the sum of its observations
/// (`*sum_out`) and their number (`*count_out`). Any output may be NULL.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics`;
/// `INVALID_ARGUMENT` for an index out of range or a family that is not a
/// histogram. Outputs are written only on success. Thread: any.
///
/// # Safety
/// `metrics` is NULL or a live snapshot; the outputs and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_sample_histogram(
    metrics: *const ballot_metrics,
    family: usize,
    sample: usize,
    buckets_out: *mut usize,
    sum_out: *mut f64,
    count_out: *mut u64,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let m = unsafe { arg(metrics, "metrics") }?;
        let h = m.histogram(family, sample)?;
        unsafe {
            if !buckets_out.is_null() {
                *buckets_out = h.buckets.len();
            }
            if !sum_out.is_null() {
                *sum_out = h.sum;
            }
            if !count_out.is_null() {
                *count_out = h.count;
            }
        }
        Ok(())
    })
}

/// Bucket `bucket` of the histogram of sample `sample` of family `family`: its
/// upper bound (`*le_out`, `INFINITY` for the last) and the number of
/// observations at most that bound (`*count_out`, cumulative).
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics`, `le_out`
/// or `count_out`; `INVALID_ARGUMENT` for an index out of range or a family that
/// is not a histogram. Outputs are written only on success. Thread: any.
///
/// # Safety
/// `metrics` is NULL or a live snapshot; the outputs and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_sample_bucket(
    metrics: *const ballot_metrics,
    family: usize,
    sample: usize,
    bucket: usize,
    le_out: *mut f64,
    count_out: *mut u64,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let m = unsafe { arg(metrics, "metrics") }?;
        out_arg(le_out, "le_out")?;
        out_arg(count_out, "count_out")?;
        let h = m.histogram(family, sample)?;
        let (le, count) = h.buckets.get(bucket).copied().ok_or_else(|| {
            Failure::invalid(format!("bucket {bucket} is out of range: the histogram has {} buckets", h.buckets.len()))
        })?;
        unsafe {
            *le_out = le;
            *count_out = count;
        }
        Ok(())
    })
}

/// Frees a snapshot returned by `ballot_metrics_snapshot`; the strings read from
/// it are gone with it.
///
/// Ownership: takes `metrics`. NULL: no-op. Thread: any.
///
/// # Safety
/// `metrics` is NULL or a snapshot owned by the caller and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_free(metrics: *mut ballot_metrics) {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!((), { unsafe { ballot_metrics::free(metrics) } })
}

/// Every metric family of libballot now in the Prometheus text exposition format
/// 0.0.4 (serve it with `Content-Type: text/plain; version=0.0.4`), a
/// NUL-terminated string into `*text_out`.
///
/// Ownership: `*text_out` belongs to the caller; free it with `ballot_string_free`
/// (never with `free`).
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `text_out`.
/// `*text_out` is written only on success. Thread: any.
///
/// # Safety
/// `text_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_metrics_prometheus(
    text_out: *mut *mut c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        out_arg(text_out, "text_out")?;
        let text = c_string(&ballot::metrics::render_prometheus());
        // SAFETY: `text_out` is writable and not NULL (checked above).
        unsafe { *text_out = text.into_raw() };
        Ok(())
    })
}

/// Frees a string that libballot returned as owned (`ballot_metrics_prometheus`).
///
/// Ownership: takes `s`. NULL: no-op. Thread: any.
///
/// # Safety
/// `s` is NULL or a string returned as owned by libballot and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ballot_string_free(s: *mut c_char) {
    ffi_boundary_value!((), {
        if !s.is_null() {
            // SAFETY: guaranteed by the caller: it came from `CString::into_raw`.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}
