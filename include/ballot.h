/*
 * ballot.h: the C ABI of ballot, leader election over etcd, ZooKeeper, Consul and a
 * local single-host backend.
 *
 * Generated from ffi/src by cbindgen (see ffi/cbindgen.toml); do not edit by hand.
 * Regenerate with: BALLOT_BLESS=1 cargo test -p ballot-ffi --test header
 *
 * Conventions, for every function below:
 *  - Fallible functions return a ballot_result; BALLOT_RESULT_OK (0) is success.
 *  - A trailing `ballot_error **err_out` may be NULL. On failure, and only then,
 *    it receives an error that the caller frees with ballot_error_free().
 *  - Outputs are written only on success.
 *  - A NULL pointer where one is required gives BALLOT_RESULT_NULL_PARAMETER.
 *  - Strings are NUL-terminated UTF-8; invalid UTF-8 gives BALLOT_RESULT_INVALID_UTF8.
 *  - Byte values are a pointer followed by a size_t length.
 *  - Every object has a _free function, and _free(NULL) is a no-op.
 *  - Ownership is the same for every handle (ballot_client, ballot_election,
 *    ballot_leader, ballot_error, ballot_options): libballot makes it (_new,
 *    _connect, an `out` or `err_out` argument), the caller owns it and gives it
 *    back exactly once to its _free; a function taking a handle borrows it for the
 *    call. A handle lent to a callback (an event's leader, a completion's error)
 *    is borrowed for that call and never freed by the caller.
 *  - No panic crosses into C: a caught one gives BALLOT_RESULT_PANIC.
 *  - Callbacks always run on threads owned by libballot.
 */


#ifndef BALLOT_H
#define BALLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The version of this header; ballot_version() gives the library's. */
#define BALLOT_VERSION "0.1.0"
#define BALLOT_VERSION_MAJOR 0
#define BALLOT_VERSION_MINOR 1
#define BALLOT_VERSION_PATCH 0


/**
 * What an event reports. New kinds may be added; ignore kinds you do not know.
 */
enum ballot_event_kind
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
    /**
     * This handle became leader; `term` is the new term.
     */
    BALLOT_EVENT_KIND_ELECTED = 1,
    /**
     * Leadership is in doubt (the session's health is unknown): stop acting as
     * leader until `RECONNECTED`. `LOST` follows if it cannot be confirmed.
     */
    BALLOT_EVENT_KIND_SUSPENDED = 2,
    /**
     * Leadership was confirmed again after `SUSPENDED`.
     */
    BALLOT_EVENT_KIND_RECONNECTED = 3,
    /**
     * Leadership is gone; `reason` says why. Reported no later than the earliest
     * moment at which the backend could let another candidate win.
     */
    BALLOT_EVENT_KIND_LOST = 4,
    /**
     * This handle resigned.
     */
    BALLOT_EVENT_KIND_RESIGNED = 5,
    /**
     * The election's leader changed; `leader` is the new one, or NULL when the
     * election has no leader.
     */
    BALLOT_EVENT_KIND_LEADER_CHANGED = 6,
    /**
     * The election was ended by `ballot_election_end`. No event follows.
     */
    BALLOT_EVENT_KIND_ENDED = 7,
    /**
     * A background error (a broken watch, a failed re-campaign); `error` and
     * `message` describe it. The handle keeps working where it can.
     */
    BALLOT_EVENT_KIND_ERROR = 8,
};
#ifndef __cplusplus
typedef uint32_t ballot_event_kind;
#endif // __cplusplus

/**
 * The level of a log record, most important first; the `level` argument of
 * `ballot_set_log_callback` delivers that level and those above it.
 */
enum ballot_log_level
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
    /**
     * No records (only as the `level` argument).
     */
    BALLOT_LOG_LEVEL_OFF = 0,
    /**
     * Something failed that the caller did not ask about.
     */
    BALLOT_LOG_LEVEL_ERROR = 1,
    /**
     * Leadership is or may be gone: suspended, lost, a lost session, an error event.
     */
    BALLOT_LOG_LEVEL_WARN = 2,
    /**
     * Other changes of a handle or a session: elected, resigned, reconnected, ended,
     * a requeue, a new session, a client connected or closed.
     */
    BALLOT_LOG_LEVEL_INFO = 3,
    /**
     * State transitions, leader changes, single keepalive failures.
     */
    BALLOT_LOG_LEVEL_DEBUG = 4,
    /**
     * Finer records (none yet).
     */
    BALLOT_LOG_LEVEL_TRACE = 5,
};
#ifndef __cplusplus
typedef uint32_t ballot_log_level;
#endif // __cplusplus

/**
 * Why leadership was lost (the `reason` of a `BALLOT_EVENT_KIND_LOST` event).
 */
enum ballot_lost_reason
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
    /**
     * Not a `LOST` event.
     */
    BALLOT_LOST_REASON_NONE = 0,
    /**
     * The session expired, or its local deadline passed.
     */
    BALLOT_LOST_REASON_SESSION_LOST = 1,
    /**
     * The leader's record was deleted or taken over.
     */
    BALLOT_LOST_REASON_DELETED = 2,
    /**
     * After a reconnect, the record no longer belonged to this session.
     */
    BALLOT_LOST_REASON_NOT_OWNER = 3,
};
#ifndef __cplusplus
typedef uint32_t ballot_lost_reason;
#endif // __cplusplus

/**
 * Whether a metric family counts, measures or distributes.
 */
enum ballot_metric_type
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
    /**
     * Only goes up while its series lives; the name ends in `_total`.
     */
    BALLOT_METRIC_TYPE_COUNTER = 1,
    /**
     * Goes up and down.
     */
    BALLOT_METRIC_TYPE_GAUGE = 2,
    /**
     * Observations in cumulative buckets, with their sum and count.
     */
    BALLOT_METRIC_TYPE_HISTOGRAM = 3,
};
#ifndef __cplusplus
typedef uint32_t ballot_metric_type;
#endif // __cplusplus

/**
 * The outcome of a libballot call. `BALLOT_RESULT_OK` (0) is success; every other
 * value names what went wrong. Codes 1 to 12 are one per kind of ballot error
 * (the same kinds as the Rust `ErrorKind`, the Python exception classes and the
 * Node error codes); codes from 100 on are errors of the C boundary itself.
 *
 * Codes are never renumbered. A retired code stays reserved here as a comment.
 * `ballot_result_str` gives a static name for each code.
 */
enum ballot_result
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
    /**
     * Success.
     */
    BALLOT_RESULT_OK = 0,
    /**
     * A value given by the caller is not acceptable: an election name (empty,
     * longer than 256 bytes, an empty segment, a control character), a value
     * (empty or larger than the backend's limit), a URL or an option, or an
     * operation that the handle's current state does not allow (for example
     * campaigning twice). The error message names the problem.
     */
    BALLOT_RESULT_INVALID_ARGUMENT = 1,
    /**
     * The backend could not be reached or the connection broke.
     */
    BALLOT_RESULT_CONNECTION = 2,
    /**
     * The operation did not finish within its timeout.
     */
    BALLOT_RESULT_TIMEOUT = 3,
    /**
     * The operation needs leadership and this handle does not hold it.
     */
    BALLOT_RESULT_NOT_LEADER = 4,
    /**
     * The election has no leader.
     */
    BALLOT_RESULT_NO_LEADER = 5,
    /**
     * The session was lost while the operation ran.
     */
    BALLOT_RESULT_SESSION_LOST = 6,
    /**
     * The election was ended by `ballot_election_end` (from any participant).
     */
    BALLOT_RESULT_ENDED = 7,
    /**
     * The client or election was closed (`ballot_client_close` or
     * `ballot_client_free`).
     */
    BALLOT_RESULT_CLOSED = 8,
    /**
     * The backend refused the credentials or the permission.
     */
    BALLOT_RESULT_AUTH = 9,
    /**
     * The backend answered with an error that fits no other code.
     */
    BALLOT_RESULT_BACKEND = 10,
    /**
     * A bug or broken invariant inside ballot (please report it).
     */
    BALLOT_RESULT_INTERNAL = 11,
    /**
     * The operation was cancelled: by `ballot_election_cancel`, by a resign that
     * withdrew a waiting campaign, or by `ballot_election_free` for a pending
     * `ballot_election_campaign_async`.
     */
    BALLOT_RESULT_CANCELLED = 12,
    /**
     * A required pointer argument was NULL. The error message names it.
     */
    BALLOT_RESULT_NULL_PARAMETER = 100,
    /**
     * A string argument was not valid UTF-8.
     */
    BALLOT_RESULT_INVALID_UTF8 = 101,
    /**
     * A panic inside libballot was caught at the boundary (a bug; please report
     * it). The handle may be in an unspecified but memory-safe state.
     */
    BALLOT_RESULT_PANIC = 102,
    /**
     * The call was made from inside a callback of the same election, where it
     * would wait for itself (`ballot_election_free` from that election's event
     * callback or campaign completion callback). Nothing was done.
     */
    BALLOT_RESULT_REENTRANT = 103,
};
#ifndef __cplusplus
typedef uint32_t ballot_result;
#endif // __cplusplus

/**
 * Where an election handle stands.
 */
enum ballot_state
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
    /**
     * Not a candidate.
     */
    BALLOT_STATE_IDLE = 0,
    /**
     * Waiting to win.
     */
    BALLOT_STATE_CAMPAIGNING = 1,
    /**
     * Leading, and the session is healthy.
     */
    BALLOT_STATE_LEADER = 2,
    /**
     * Was leading, but the session's health is in doubt: do not act as leader.
     */
    BALLOT_STATE_SUSPENDED = 3,
    /**
     * The election was ended. Terminal.
     */
    BALLOT_STATE_ENDED = 4,
    /**
     * The handle or its client was closed. Terminal.
     */
    BALLOT_STATE_CLOSED = 5,
};
#ifndef __cplusplus
typedef uint32_t ballot_state;
#endif // __cplusplus

/**
 * A connection to one backend with one session (an etcd lease, a ZooKeeper
 * session, a Consul session, or a local holder), kept alive by the library.
 *
 * Made by `ballot_client_connect`, freed by `ballot_client_free`. Every function
 * may be called on it from any thread, concurrently.
 */
typedef struct ballot_client ballot_client;

/**
 * One participant in one election: it campaigns, proclaims, resigns, reads the
 * leader, ends the election and reports events.
 *
 * Made by `ballot_election_new`, freed by `ballot_election_free`. Every function
 * but `ballot_election_free` may be called on it from any thread, concurrently
 * (a blocking campaign on one thread and `ballot_election_cancel` on another, for
 * example).
 */
typedef struct ballot_election ballot_election;

/**
 * The detail of a failed call: its result code and a message naming the cause.
 *
 * Made by libballot and handed to the caller through an `err_out` argument; the
 * caller owns it and frees it with `ballot_error_free`. It is immutable, so it
 * may be read from any thread.
 */
typedef struct ballot_error ballot_error;

/**
 * The leader of an election as the backend recorded it when it was read: its
 * value, its term (fencing token) and its key.
 *
 * Returned by `ballot_election_leader` (owned by the caller, freed with
 * `ballot_leader_free`) and lent to event callbacks (borrowed for the call only).
 * It is immutable, so it may be read from any thread.
 */
typedef struct ballot_leader ballot_leader;

/**
 * Every metric family of libballot at one moment: the series of every live client
 * and election handle of the process (names, help, types, labels and values in
 * `ballot::metrics`' table, the README's "Operating ballot").
 *
 * Returned by `ballot_metrics_snapshot`, owned by the caller and freed with
 * `ballot_metrics_free`. Read it with `ballot_metrics_family_count`,
 * `ballot_metrics_family` and the sample accessors, which take indexes from 0.
 * It is immutable, so it may be read from any thread.
 */
typedef struct ballot_metrics ballot_metrics;

/**
 * Settings for `ballot_client_connect`: made by `ballot_options_new` with every
 * option at its default, changed by the `ballot_options_set_*` functions, freed
 * by `ballot_options_free`.
 *
 * The options are `ttl`, `safety_margin`, `connect_timeout`, `auto_requeue`,
 * `username`, `password`, `token`, `tls_ca`, `tls_cert` and `tls_key`; each has
 * the setter `ballot_options_set_<option>`. Setting an option again replaces its
 * value. A setter checks its value at once and leaves the options unchanged when
 * it refuses it; a token and a username or password exclude each other, so
 * setting one kind after the other is refused there too. What depends on
 * several options or on the URL (a margin below the TTL, a username with its
 * password, the URL agreeing with the options) is checked by
 * `ballot_client_connect`.
 *
 * The URL and the options: the TTL, the margin, the connect timeout, the
 * credentials and the TLS files may also be given in the backend URL (`ttl=`,
 * `margin=`, `connect_timeout=`, `user:password@`, `TOKEN@`, `ca=`, `cert=`,
 * `key=`). Neither place overrides the other. An option given in one place is
 * used; one given in both with the same value is used too; one given in both
 * with different values makes `ballot_client_connect` fail with
 * `BALLOT_RESULT_INVALID_ARGUMENT`, and a message that names the option but
 * never shows a password, token or user name. So does `tls=0` in the URL beside
 * a `tls_*` option, and, on ZooKeeper, a `session_timeout=` in the URL that
 * differs from the `ttl` set here.
 *
 * Threads: an options object may be used from any thread, but not from two at
 * once while one of them sets an option. `ballot_client_connect` only reads it,
 * so one options object may serve many connects, also concurrently.
 */
typedef struct ballot_options ballot_options;

/**
 * The candidates of an election as one read of the backend saw them, in queue
 * order, the leader first: for each, its key, its value and whether it leads
 * (only the first one can).
 *
 * Returned by `ballot_election_participants`, owned by the caller and freed with
 * `ballot_participants_free`. Read it with `ballot_participants_len` and the
 * accessors, which take an index from 0 to `len - 1`. It is immutable, so it
 * may be read from any thread.
 */
typedef struct ballot_participants ballot_participants;

/**
 * The completion callback of `ballot_election_campaign_async`.
 *
 * `result` is `BALLOT_RESULT_OK` when elected, with `term` the new term; otherwise
 * `term` is 0 and `error` describes the failure (borrowed for the call; do not
 * free it). It is called exactly once per accepted campaign, on a thread owned
 * by libballot (`ballot-campaign`). It may call any libballot function, except
 * `ballot_election_free` on the same election, which returns
 * `BALLOT_RESULT_REENTRANT`.
 */
typedef void (*ballot_done_cb)(void *user_data,
                               ballot_result result,
                               uint64_t term,
                               const struct ballot_error *error);

/**
 * One event of an election handle, lent to a `ballot_event_cb` for the duration of
 * the call. Fields that do not apply to `kind` are 0 or NULL. Fields may be
 * added at the end in later versions; the struct is always made by libballot.
 */
typedef struct ballot_event {
    /**
     * What happened: a `ballot_event_kind`. A kind that a later libballot adds
     * arrives by its code, with the other fields empty; ignore kinds you do not
     * know (`ballot_event_kind_str` names them).
     */
    uint32_t kind;
    /**
     * `ELECTED`: the new term. `LEADER_CHANGED`: the new leader's term, or 0.
     */
    uint64_t term;
    /**
     * `LOST`: why. Otherwise `BALLOT_LOST_REASON_NONE`.
     */
    ballot_lost_reason reason;
    /**
     * `LEADER_CHANGED`: the new leader, or NULL when there is none. Borrowed for
     * the call; do not free it.
     */
    const struct ballot_leader *leader;
    /**
     * `ERROR`: the error's code. Otherwise `BALLOT_RESULT_OK`.
     */
    ballot_result error;
    /**
     * `ERROR`: the error's message, NUL-terminated. Otherwise NULL. Borrowed for
     * the call.
     */
    const char *message;
} ballot_event;

/**
 * An event callback: `user_data` is the pointer given at registration, `event`
 * is borrowed for the call.
 *
 * It runs on the client's event thread, a thread owned by libballot (never the
 * registering thread and never a runtime worker), one event at a time and in
 * order. It may call any libballot function, except `ballot_election_free` on its
 * own election, which returns `BALLOT_RESULT_REENTRANT`. A slow callback delays
 * the events of every election of the same client.
 */
typedef void (*ballot_event_cb)(void *user_data,
                                const struct ballot_event *event);

/**
 * Releases the `user_data` of a registration. libballot calls it exactly once,
 * when nothing can call the callback any more: when the registration is replaced,
 * or from `ballot_election_free`. It runs on the thread that made that call,
 * or on the event thread when that call was made from inside the callback.
 */
typedef void (*ballot_user_data_free)(void *user_data);

/**
 * Receives one log record. `message` says what happened (with the record's other
 * fields appended as ` key=value`); `backend` (the URL's scheme) and `election`
 * name what it concerns, or are NULL. The strings are NUL-terminated UTF-8 lent
 * for the call only: copy what you keep.
 *
 * Thread: called on one library thread (`ballot-log`), one record at a time, in
 * the order they were made; never on a caller's thread. It may call any ballot
 * function except `ballot_set_log_callback`. A slow callback makes records drop
 * (a queue of 1,024), never an election wait; the drop is reported by a `warn`
 * record.
 */
typedef void (*ballot_log_cb)(void *user_data,
                              ballot_log_level level,
                              const char *message,
                              const char *backend,
                              const char *election);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The version of libballot as a static NUL-terminated string, for example
 * `"0.1.0"`. It equals the `BALLOT_VERSION` macro of the header the program was
 * compiled with when the header and the library match.
 *
 * Ownership: the string is static; do not free it. Thread: any. Never fails.
 */
const char *ballot_version(void);

/**
 * Connects to the backend that `url` names and starts its session. Blocks until
 * connected, at most the connect timeout.
 *
 * URLs: `file:///var/run/ballot` (local, one host), `etcd://h1:2379[,h2:2379][/ns]`,
 * `zk://h1:2181[/chroot]`, `consul://h:8500[/ns]`; a backend not built into this
 * library is rejected with `BALLOT_RESULT_INVALID_ARGUMENT`.
 *
 * Parameters: `url` is a NUL-terminated UTF-8 string, borrowed for the call.
 * `options` (made by `ballot_options_new`) may be NULL for the defaults; it is
 * borrowed for the call and stays the caller's. An option given both in the URL
 * and in `options` must have the same value in both (see `ballot_options`). On
 * success `*out` receives a new client, owned by the caller, to be freed with
 * `ballot_client_free`; on failure `*out` is not written.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`url` or `out` NULL);
 * `INVALID_UTF8`; `INVALID_ARGUMENT` (malformed URL, unknown option, value out of
 * range, an option that the URL and `options` give with different values, a
 * username without its password); `CONNECTION`; `TIMEOUT`; `AUTH`. With a
 * non-NULL `err_out`, a failure stores an error there that the caller frees with
 * `ballot_error_free`; no message shows a password, token or user name.
 *
 * Thread: any; blocks the calling thread.
 *
 * # Safety
 * Pointers are NULL or valid as described above.
 */
ballot_result ballot_client_connect(const char *url,
                                    const struct ballot_options *options,
                                    struct ballot_client **out,
                                    struct ballot_error **err_out);

/**
 * Closes the client: resigns every election made from it, withdraws every
 * candidate, releases the session, and makes every later operation on the client
 * and its elections fail with `BALLOT_RESULT_CLOSED`. The handles stay valid and
 * must still be freed. Closing twice is fine.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; a backend error if the session
 * could not be released cleanly (it then expires on the server after its TTL).
 *
 * Thread: any, including a callback; blocks the calling thread.
 *
 * # Safety
 * `client` is NULL or a live client.
 */
ballot_result ballot_client_close(struct ballot_client *client,
                                  struct ballot_error **err_out);

/**
 * Closes the client as `ballot_client_close` does, then frees it.
 *
 * Elections made from it stay valid handles (their operations then fail with
 * `BALLOT_RESULT_CLOSED`) and must still be freed with `ballot_election_free`,
 * in any order relative to this call.
 *
 * Ownership: takes `client`; it must not be used afterwards. NULL: no-op.
 * Thread: any, including a callback; blocks until the session is released.
 *
 * # Safety
 * `client` is NULL or a live client that no other thread is using.
 */
void ballot_client_free(struct ballot_client *client);

/**
 * Makes a handle on the election `name` of `client`. Nothing is written to the
 * backend until the handle is used. Several handles on one name are independent
 * participants.
 *
 * `name` is a `/`-separated path of printable UTF-8, at most 256 bytes, with no
 * empty segment; it is borrowed for the call. On success `*out` receives a new
 * election owned by the caller, freed with `ballot_election_free`; it keeps what
 * it needs of the client, so it may outlive `client`.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
 * `INVALID_ARGUMENT` (bad name); `CLOSED` (client closed).
 *
 * Thread: any; does not block.
 *
 * # Safety
 * Pointers are NULL or valid as described above.
 */
ballot_result ballot_election_new(const struct ballot_client *client,
                                  const char *name,
                                  struct ballot_election **out,
                                  struct ballot_error **err_out);

/**
 * Frees an election handle: stops its event callback (waiting for a running call
 * to return, then calling its `user_data_free` once), cancels a pending
 * `ballot_election_campaign_async` (its callback gets `BALLOT_RESULT_CANCELLED`
 * before this returns), and withdraws the candidate, resigning if it leads.
 *
 * Ownership: takes `election` unless the result is `BALLOT_RESULT_REENTRANT`.
 * NULL: no-op, `BALLOT_RESULT_OK`.
 *
 * Results: `BALLOT_RESULT_OK`; `BALLOT_RESULT_REENTRANT` when called from inside
 * this election's own event callback or campaign completion callback, where it
 * would wait for itself: then nothing is done and the handle stays valid (and
 * `*err_out`, when `err_out` is not NULL, receives an error to free).
 *
 * Thread: any other thread may free; no other thread may be using `election`
 * (a blocking campaign on it must have returned). Blocks until the above is done.
 *
 * # Safety
 * `election` is NULL or a live election.
 */
ballot_result ballot_election_free(struct ballot_election *election,
                                   struct ballot_error **err_out);

/**
 * Campaigns with `value` and blocks until this handle leads, `timeout_ms` passes,
 * or the campaign fails. On timeout or cancellation the candidate is withdrawn and
 * leaves nothing behind on the backend.
 *
 * `value` points to `len` bytes (1 byte up to the backend's limit: 1 MiB, 512 KiB
 * on Consul), borrowed for the call; `(NULL, 0)` is the empty value, which is
 * refused. `timeout_ms` < 0 waits for ever. On success `*term_out` (may be NULL)
 * receives the term of this leadership.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_ARGUMENT` (empty or
 * oversized value, already campaigning or leading); `TIMEOUT`; `CANCELLED`
 * (`ballot_election_cancel`, or a `ballot_election_resign` from another thread);
 * `ENDED`; `CLOSED`; `SESSION_LOST`; `CONNECTION`; `AUTH`; `BACKEND`.
 *
 * Thread: any; blocks the calling thread. Another thread may cancel it with
 * `ballot_election_cancel`.
 *
 * # Safety
 * Pointers are NULL or valid as described above.
 */
ballot_result ballot_election_campaign(const struct ballot_election *election,
                                       const uint8_t *value,
                                       size_t len,
                                       int64_t timeout_ms,
                                       uint64_t *term_out,
                                       struct ballot_error **err_out);

/**
 * Starts a campaign with `value` and returns at once; `cb` is called exactly once
 * with the outcome, on a thread owned by libballot. The campaign waits for ever
 * unless cancelled (`ballot_election_cancel`, `ballot_election_resign`, or
 * `ballot_election_free`, which calls `cb` with `BALLOT_RESULT_CANCELLED` before
 * it returns).
 *
 * `value` is copied before the call returns. `user_data` is passed to `cb` as is;
 * libballot never frees it (free it in `cb`).
 *
 * Results: `BALLOT_RESULT_OK` when the campaign was started (every later outcome,
 * including an invalid value or a campaign already running, goes to `cb`, and
 * not to `err_out`); `NULL_PARAMETER` (`election` or `cb` NULL, or `value` NULL
 * with `len` > 0) and `INTERNAL` (no thread could be started), in which cases
 * `cb` is never called.
 *
 * Thread: any; does not block.
 *
 * # Safety
 * Pointers are NULL or valid as described above; `election` stays live until
 * `cb` has been called (`ballot_election_free` guarantees that).
 */
ballot_result ballot_election_campaign_async(const struct ballot_election *election,
                                             const uint8_t *value,
                                             size_t len,
                                             ballot_done_cb cb,
                                             void *user_data,
                                             struct ballot_error **err_out);

/**
 * Cancels the campaigns of this handle that are running now, blocking or
 * asynchronous: they end with `BALLOT_RESULT_CANCELLED` and their candidates are
 * withdrawn. A campaign started after this call is not affected. Cancelling when
 * nothing runs is fine.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`.
 *
 * Thread: any, and meant to be called from another thread than the one blocked in
 * `ballot_election_campaign`; does not block.
 *
 * # Safety
 * `election` is NULL or a live election.
 */
ballot_result ballot_election_cancel(const struct ballot_election *election,
                                     struct ballot_error **err_out);

/**
 * Replaces the leader's value; the term does not change. `value` points to `len`
 * bytes, borrowed for the call.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `NOT_LEADER` unless this handle
 * leads; `INVALID_ARGUMENT` (empty or oversized value); `ENDED`; `CLOSED`; backend
 * errors.
 *
 * Thread: any; blocks the calling thread.
 *
 * # Safety
 * Pointers are NULL or valid as described above.
 */
ballot_result ballot_election_proclaim(const struct ballot_election *election,
                                       const uint8_t *value,
                                       size_t len,
                                       struct ballot_error **err_out);

/**
 * Gives up leadership, or withdraws a waiting candidate (whose pending campaign
 * then ends with `BALLOT_RESULT_CANCELLED`).
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `NOT_LEADER` when neither leading
 * nor campaigning; `ENDED`; `CLOSED`; backend errors (the session's expiry then
 * removes the record later).
 *
 * Thread: any; blocks the calling thread.
 *
 * # Safety
 * `election` is NULL or a live election.
 */
ballot_result ballot_election_resign(const struct ballot_election *election,
                                     struct ballot_error **err_out);

/**
 * Reads the election's current leader from the backend. On success `*out`
 * receives a leader owned by the caller, freed with `ballot_leader_free`.
 *
 * Results: `BALLOT_RESULT_OK`; `NO_LEADER` when the election has no leader
 * (`*out` is not written); `NULL_PARAMETER`; `ENDED`; `CLOSED`; backend errors.
 *
 * Thread: any; blocks the calling thread.
 *
 * # Safety
 * Pointers are NULL or valid as described above.
 */
ballot_result ballot_election_leader(const struct ballot_election *election,
                                     struct ballot_leader **out,
                                     struct ballot_error **err_out);

/**
 * Lists the election's candidates in queue order, the leader first, from one
 * consistent read of the backend where it allows (see the README). On success
 * `*out` receives a list owned by the caller, freed with
 * `ballot_participants_free`; an election without candidates gives an empty
 * list (length 0), not an error.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `ENDED` once this handle saw
 * the election ended; `CLOSED`; `TIMEOUT`; backend errors.
 *
 * Thread: any; blocks the calling thread.
 *
 * # Safety
 * Pointers are NULL or valid as described above.
 */
ballot_result ballot_election_participants(const struct ballot_election *election,
                                           struct ballot_participants **out,
                                           struct ballot_error **err_out);

/**
 * Ends the election for every participant: each gets a `BALLOT_EVENT_KIND_ENDED`
 * event, leaders step down, and later operations on their handles fail with
 * `BALLOT_RESULT_ENDED`. This handle is ended too. Terms keep increasing if the
 * name is used again by new handles. Ending twice is fine.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `CLOSED`; backend errors.
 *
 * Thread: any; blocks the calling thread.
 *
 * # Safety
 * `election` is NULL or a live election.
 */
ballot_result ballot_election_end(const struct ballot_election *election,
                                  struct ballot_error **err_out);

/**
 * The handle's state now, into `*state_out`. A leader whose session has passed its
 * local deadline reads as `BALLOT_STATE_SUSPENDED` at once.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`*state_out` is not written).
 *
 * Thread: any; does not block.
 *
 * # Safety
 * Pointers are NULL or valid as described above.
 */
ballot_result ballot_election_state(const struct ballot_election *election,
                                    ballot_state *state_out,
                                    struct ballot_error **err_out);

/**
 * The static name of a state (`"idle"`, `"campaigning"`, `"leader"`,
 * `"suspended"`, `"ended"`, `"closed"`), or `"unknown"` for a value that is not a
 * state. `state` is a `ballot_state` value; any `uint32_t` is accepted.
 *
 * Ownership: static; do not free. Thread: any. Never fails.
 */
const char *ballot_state_str(uint32_t state);

/**
 * Registers `cb` to receive every event of this handle from now on, in order.
 * A registration made before is replaced: it stops (its running call, if any,
 * returns first) and its `user_data_free` is called, before this returns (or,
 * when called from inside that callback, right after the callback returns).
 * Events that the old callback had not yet received are not delivered to it; an
 * event that happens during the replacement may reach both callbacks.
 *
 * `user_data` is passed to `cb` as is. `user_data_free` (may be NULL) is called
 * exactly once with `user_data`, when nothing can call `cb` any more: when this
 * registration is replaced or the election is freed. Ownership of `user_data` on
 * failure: when this returns an error, `user_data_free` is never called and
 * `user_data` stays the caller's.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`election` or `cb` NULL);
 * `INTERNAL` (the event thread could not be started).
 *
 * Thread: any. `cb` runs on the client's event thread, owned by libballot; see
 * `ballot_event_cb`.
 *
 * # Safety
 * Pointers are NULL or valid as described above; `user_data` may be used from the
 * event thread.
 */
ballot_result ballot_election_on_event(const struct ballot_election *election,
                                       ballot_event_cb cb,
                                       void *user_data,
                                       ballot_user_data_free user_data_free,
                                       struct ballot_error **err_out);

/**
 * The static name of a result code, such as `"ok"`, `"not_leader"` or
 * `"null_parameter"`; `"unknown"` for a value that is not a code.
 *
 * `code` is a `ballot_result` value; any `uint32_t` is accepted.
 *
 * Ownership: the string is static; do not free it. Thread: any. Never fails.
 */
const char *ballot_result_str(uint32_t code);

/**
 * The message of an error: one line naming the code and the cause, for example
 * `"invalid_argument: election name \"a//b\" has an empty segment ..."`.
 *
 * Ownership: the string belongs to `error` and lives until
 * `ballot_error_free(error)`. NULL: returns NULL when `error` is NULL.
 * Thread: any.
 *
 * # Safety
 * `error` is NULL or an error made by libballot and not yet freed.
 */
const char *ballot_error_message(const struct ballot_error *error);

/**
 * The result code of an error (never `BALLOT_RESULT_OK`).
 *
 * NULL: returns `BALLOT_RESULT_NULL_PARAMETER` when `error` is NULL.
 * Thread: any.
 *
 * # Safety
 * `error` is NULL or an error made by libballot and not yet freed.
 */
ballot_result ballot_error_result(const struct ballot_error *error);

/**
 * Frees an error returned through an `err_out` argument.
 *
 * Ownership: takes `error`; it must not be used afterwards. NULL: no-op.
 * Thread: any.
 *
 * # Safety
 * `error` is NULL or an error made by libballot and not yet freed.
 */
void ballot_error_free(struct ballot_error *error);

/**
 * The canonical name of an event kind: `"elected"`, `"suspended"`,
 * `"reconnected"`, `"lost"`, `"resigned"`, `"leader_changed"`, `"ended"` or
 * `"error"` (the constant's name in lower case, without its prefix), or the
 * name of a kind that a later libballot adds; `"unknown"` for a value that is
 * no kind. `kind` is a `ballot_event_kind` value; any `uint32_t` is accepted.
 *
 * Ownership: the string is static; do not free it. Thread: any. Never fails.
 */
const char *ballot_event_kind_str(uint32_t kind);

/**
 * The leader's term: the fencing token, strictly increasing over the successive
 * leaders of the election. Pass it to the resources the leader writes, so that
 * they can refuse a stale leader.
 *
 * NULL: returns 0 (no real term is 0). Thread: any.
 *
 * # Safety
 * `leader` is NULL or a live leader.
 */
uint64_t ballot_leader_term(const struct ballot_leader *leader);

/**
 * The leader's value: `*value_out` receives a pointer to its bytes and `*len_out`
 * their number. The bytes belong to `leader` and live as long as it does; they
 * are not NUL-terminated.
 *
 * NULL: when `leader` is NULL, `*value_out` becomes NULL and `*len_out` 0; a NULL
 * `value_out` or `len_out` is skipped. Thread: any.
 *
 * # Safety
 * `leader` is NULL or a live leader; `value_out` and `len_out` are NULL or
 * writable.
 */
void ballot_leader_value(const struct ballot_leader *leader,
                         const uint8_t **value_out,
                         size_t *len_out);

/**
 * The leader's key as the backend names it (etcd key, ZooKeeper node path, Consul
 * session, local holder id), NUL-terminated.
 *
 * Ownership: the string belongs to `leader` and lives as long as it does.
 * NULL: returns NULL when `leader` is NULL. Thread: any.
 *
 * # Safety
 * `leader` is NULL or a live leader.
 */
const char *ballot_leader_key(const struct ballot_leader *leader);

/**
 * Frees a leader returned by `ballot_election_leader`. Never call it on the
 * leader lent to an event callback.
 *
 * Ownership: takes `leader`. NULL: no-op. Thread: any.
 *
 * # Safety
 * `leader` is NULL or a leader owned by the caller and not yet freed.
 */
void ballot_leader_free(struct ballot_leader *leader);

/**
 * Sends ballot's log records at `level` (a `ballot_log_level`) and above to `cb`,
 * replacing the callback set before. `BALLOT_LOG_LEVEL_OFF` or a NULL `cb`
 * stops the records.
 *
 * When this returns, the callback it replaced is not running and is never called
 * again, so its `user_data` may be freed. Records never hold a secret (no
 * password, token, userinfo or value).
 *
 * Errors: `BALLOT_RESULT_INVALID_ARGUMENT` for a level that is not a
 * `ballot_log_level`, when called from inside the log callback, or when the
 * process already has another global Rust `tracing` subscriber. Thread: any.
 *
 * # Safety
 * `cb`, if not NULL, and `user_data` must be usable from another thread until the
 * callback is replaced. `err_out` is NULL or a valid `ballot_error *` slot.
 */
ballot_result ballot_set_log_callback(uint32_t level,
                                      ballot_log_cb cb,
                                      void *user_data,
                                      struct ballot_error **err_out);

/**
 * Takes a snapshot of every metric family of libballot (see `ballot_metrics`)
 * into `*out`.
 *
 * Ownership: `*out` belongs to the caller; free it with `ballot_metrics_free`.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `out`. `*out` is
 * written only on success. Thread: any; it does not wait on the network.
 *
 * # Safety
 * `out` and `err_out` are NULL or writable.
 */
ballot_result ballot_metrics_snapshot(struct ballot_metrics **out,
                                      struct ballot_error **err_out);

/**
 * The number of families in the snapshot (every family is always there, possibly
 * with no sample).
 *
 * NULL: returns 0. Thread: any.
 *
 * # Safety
 * `metrics` is NULL or a live snapshot.
 */
size_t ballot_metrics_family_count(const struct ballot_metrics *metrics);

/**
 * Family `family` of the snapshot: its name (`*name_out`, as exposed: a
 * counter's ends in `_total`), its one-line help (`*help_out`), its type
 * (`*type_out`) and its number of samples (`*samples_out`). Any of the four
 * outputs may be NULL when not wanted.
 *
 * Ownership: the strings belong to `metrics` and live as long as it does.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics`;
 * `INVALID_ARGUMENT` when `family` is not below `ballot_metrics_family_count`.
 * Outputs are written only on success. Thread: any.
 *
 * # Safety
 * `metrics` is NULL or a live snapshot; the outputs and `err_out` are NULL or writable.
 */
ballot_result ballot_metrics_family(const struct ballot_metrics *metrics,
                                    size_t family,
                                    const char **name_out,
                                    const char **help_out,
                                    ballot_metric_type *type_out,
                                    size_t *samples_out,
                                    struct ballot_error **err_out);

/**
 * The number of labels of sample `sample` of family `family`, into `*count_out`.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics` or
 * `count_out`; `INVALID_ARGUMENT` for an index out of range. `*count_out` is
 * written only on success. Thread: any.
 *
 * # Safety
 * `metrics` is NULL or a live snapshot; `count_out` and `err_out` are NULL or writable.
 */
ballot_result ballot_metrics_sample_label_count(const struct ballot_metrics *metrics,
                                                size_t family,
                                                size_t sample,
                                                size_t *count_out,
                                                struct ballot_error **err_out);

/**
 * Label `label` of sample `sample` of family `family`: its name (`backend`,
 * `client`, `election`, `reason`) into `*name_out` and its value into
 * `*value_out`, both NUL-terminated.
 *
 * Ownership: the strings belong to `metrics` and live as long as it does.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics`,
 * `name_out` or `value_out`; `INVALID_ARGUMENT` for an index out of range.
 * Outputs are written only on success. Thread: any.
 *
 * # Safety
 * `metrics` is NULL or a live snapshot; the outputs and `err_out` are NULL or writable.
 */
ballot_result ballot_metrics_sample_label(const struct ballot_metrics *metrics,
                                          size_t family,
                                          size_t sample,
                                          size_t label,
                                          const char **name_out,
                                          const char **value_out,
                                          struct ballot_error **err_out);

/**
 * The value of sample `sample` of family `family` into `*value_out`: a counter's
 * or a gauge's value, a histogram's sum.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics` or
 * `value_out`; `INVALID_ARGUMENT` for an index out of range. `*value_out` is
 * written only on success. Thread: any.
 *
 * # Safety
 * `metrics` is NULL or a live snapshot; `value_out` and `err_out` are NULL or writable.
 */
ballot_result ballot_metrics_sample_value(const struct ballot_metrics *metrics,
                                          size_t family,
                                          size_t sample,
                                          double *value_out,
                                          struct ballot_error **err_out);

/**
 * The histogram of sample `sample` of family `family`: its number of buckets
 * (`*buckets_out`, the last one `+Inf`), the sum of its observations
 * (`*sum_out`) and their number (`*count_out`). Any output may be NULL.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics`;
 * `INVALID_ARGUMENT` for an index out of range or a family that is not a
 * histogram. Outputs are written only on success. Thread: any.
 *
 * # Safety
 * `metrics` is NULL or a live snapshot; the outputs and `err_out` are NULL or writable.
 */
ballot_result ballot_metrics_sample_histogram(const struct ballot_metrics *metrics,
                                              size_t family,
                                              size_t sample,
                                              size_t *buckets_out,
                                              double *sum_out,
                                              uint64_t *count_out,
                                              struct ballot_error **err_out);

/**
 * Bucket `bucket` of the histogram of sample `sample` of family `family`: its
 * upper bound (`*le_out`, `INFINITY` for the last) and the number of
 * observations at most that bound (`*count_out`, cumulative).
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `metrics`, `le_out`
 * or `count_out`; `INVALID_ARGUMENT` for an index out of range or a family that
 * is not a histogram. Outputs are written only on success. Thread: any.
 *
 * # Safety
 * `metrics` is NULL or a live snapshot; the outputs and `err_out` are NULL or writable.
 */
ballot_result ballot_metrics_sample_bucket(const struct ballot_metrics *metrics,
                                           size_t family,
                                           size_t sample,
                                           size_t bucket,
                                           double *le_out,
                                           uint64_t *count_out,
                                           struct ballot_error **err_out);

/**
 * Frees a snapshot returned by `ballot_metrics_snapshot`; the strings read from
 * it are gone with it.
 *
 * Ownership: takes `metrics`. NULL: no-op. Thread: any.
 *
 * # Safety
 * `metrics` is NULL or a snapshot owned by the caller and not yet freed.
 */
void ballot_metrics_free(struct ballot_metrics *metrics);

/**
 * Every metric family of libballot now in the Prometheus text exposition format
 * 0.0.4 (serve it with `Content-Type: text/plain; version=0.0.4`), a
 * NUL-terminated string into `*text_out`.
 *
 * Ownership: `*text_out` belongs to the caller; free it with `ballot_string_free`
 * (never with `free`).
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `text_out`.
 * `*text_out` is written only on success. Thread: any.
 *
 * # Safety
 * `text_out` and `err_out` are NULL or writable.
 */
ballot_result ballot_metrics_prometheus(char **text_out,
                                        struct ballot_error **err_out);

/**
 * Frees a string that libballot returned as owned (`ballot_metrics_prometheus`).
 *
 * Ownership: takes `s`. NULL: no-op. Thread: any.
 *
 * # Safety
 * `s` is NULL or a string returned as owned by libballot and not yet freed.
 */
void ballot_string_free(char *s);

/**
 * Makes an options object with every option at its default. On success `*out`
 * receives it, owned by the caller, freed with `ballot_options_free`.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`out` NULL).
 *
 * Thread: any; does not block.
 *
 * # Safety
 * `out` and `err_out` are NULL or writable.
 */
ballot_result ballot_options_new(struct ballot_options **out,
                                 struct ballot_error **err_out);

/**
 * Frees an options object. Clients connected with it do not need it any more.
 *
 * Ownership: takes `options`; it must not be used afterwards. NULL: no-op.
 * Thread: any, while no other thread uses `options`.
 *
 * # Safety
 * `options` is NULL or an options object made by `ballot_options_new`, not yet
 * freed.
 */
void ballot_options_free(struct ballot_options *options);

/**
 * Sets the session TTL in milliseconds: how long the backend keeps the session
 * of a silent client. Default 10000; from 1000 (1 s) to 86400000 (24 h).
 * Consul's minimum is 10000; ZooKeeper's server may clamp it. The URL's `ttl=`
 * (or, on ZooKeeper, `session_timeout=`) must agree with it.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_ARGUMENT` (out of
 * range; the options are unchanged).
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_ttl(struct ballot_options *options,
                                     uint64_t ttl_ms,
                                     struct ballot_error **err_out);

/**
 * Sets the safety margin in milliseconds: leadership is reported lost at the
 * send time of the last acknowledged keepalive + TTL - margin. Default TTL/5;
 * from 0 to 86400000 (24 h), and below the TTL (checked at connect). The URL's
 * `margin=` must agree with it.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_ARGUMENT` (out of
 * range; the options are unchanged).
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_safety_margin(struct ballot_options *options,
                                               uint64_t margin_ms,
                                               struct ballot_error **err_out);

/**
 * Sets how long `ballot_client_connect` may take before it fails with
 * `BALLOT_RESULT_TIMEOUT`, in milliseconds. Default 5000; from 1 to 3600000
 * (1 h). The URL's `connect_timeout=` must agree with it.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_ARGUMENT` (out of
 * range; the options are unchanged).
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_connect_timeout(struct ballot_options *options,
                                                 uint64_t timeout_ms,
                                                 struct ballot_error **err_out);

/**
 * Sets whether a leader that lost its leadership (say, because its session
 * expired) joins the election again with its last value. Default true. Such a
 * campaign rides out transient failures, each reported as a
 * `BALLOT_EVENT_KIND_ERROR` event.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`.
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_auto_requeue(struct ballot_options *options,
                                              bool on,
                                              struct ballot_error **err_out);

/**
 * Sets the user name (etcd, ZooKeeper digest), given with
 * `ballot_options_set_password`. The URL's `user:password@` must be the same.
 * `username` is NUL-terminated UTF-8, not empty, and copied. It never appears
 * in an error message.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
 * `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `username` is NULL or a
 * NUL-terminated string; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_username(struct ballot_options *options,
                                          const char *username,
                                          struct ballot_error **err_out);

/**
 * Sets the password that goes with `ballot_options_set_username`. `password` is
 * NUL-terminated UTF-8, not empty, and copied; no error message ever shows it,
 * nor where it is not valid UTF-8.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
 * `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `password` is NULL or a
 * NUL-terminated string; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_password(struct ballot_options *options,
                                          const char *password,
                                          struct ballot_error **err_out);

/**
 * Sets a token (a Consul ACL token), instead of a username and password. The
 * URL's `TOKEN@` must be the same. `token` is NUL-terminated UTF-8, not empty,
 * and copied; no error message ever shows it.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
 * `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `token` is NULL or a
 * NUL-terminated string; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_token(struct ballot_options *options,
                                       const char *token,
                                       struct ballot_error **err_out);

/**
 * Sets the PEM file of the CA certificates that verify the server (etcd,
 * Consul), and turns TLS on. Without it TLS trusts the system's roots. The URL's
 * `ca=` must name the same file. `path` is NUL-terminated UTF-8, not empty, and
 * copied; the file is read at connect.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
 * `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `path` is NULL or a
 * NUL-terminated string; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_tls_ca(struct ballot_options *options,
                                        const char *path,
                                        struct ballot_error **err_out);

/**
 * Sets the PEM file of the client certificate for mutual TLS, and turns TLS on;
 * it needs `ballot_options_set_tls_key` too (checked at connect). The URL's
 * `cert=` must name the same file. `path` is NUL-terminated UTF-8, not empty,
 * and copied; the file is read at connect.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
 * `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `path` is NULL or a
 * NUL-terminated string; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_tls_cert(struct ballot_options *options,
                                          const char *path,
                                          struct ballot_error **err_out);

/**
 * Sets the PEM file of the client's private key for mutual TLS, and turns TLS
 * on; it needs `ballot_options_set_tls_cert` too (checked at connect). The URL's
 * `key=` must name the same file. `path` is NUL-terminated UTF-8, not empty, and
 * copied; the file is read at connect.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
 * `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
 *
 * Thread: any, while no other thread uses `options`; does not block.
 *
 * # Safety
 * `options` is NULL or a live options object; `path` is NULL or a
 * NUL-terminated string; `err_out` is NULL or writable.
 */
ballot_result ballot_options_set_tls_key(struct ballot_options *options,
                                         const char *path,
                                         struct ballot_error **err_out);

/**
 * The number of participants in the list (0 when nobody campaigns).
 *
 * NULL: returns 0. Thread: any.
 *
 * # Safety
 * `list` is NULL or a live list.
 */
size_t ballot_participants_len(const struct ballot_participants *list);

/**
 * The key of participant `index` as the backend names it (for the leader, the
 * key `ballot_leader_key` gives), NUL-terminated, into `*key_out`.
 *
 * Ownership: the string belongs to `list` and lives as long as it does.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `list` or `key_out`;
 * `INVALID_ARGUMENT` when `index` is not below `ballot_participants_len`.
 * `*key_out` is written only on success. Thread: any.
 *
 * # Safety
 * `list` is NULL or a live list; `key_out` and `err_out` are NULL or writable.
 */
ballot_result ballot_participants_key(const struct ballot_participants *list,
                                      size_t index,
                                      const char **key_out,
                                      struct ballot_error **err_out);

/**
 * The value of participant `index`: `*value_out` receives a pointer to its
 * bytes and `*len_out` their number (the leader's latest value; empty for a
 * `consul lock` holder that stored none). The bytes belong to `list` and live
 * as long as it does; they are not NUL-terminated.
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `list`, `value_out`
 * or `len_out`; `INVALID_ARGUMENT` when `index` is not below
 * `ballot_participants_len`. Outputs are written only on success. Thread: any.
 *
 * # Safety
 * `list` is NULL or a live list; the outputs and `err_out` are NULL or writable.
 */
ballot_result ballot_participants_value(const struct ballot_participants *list,
                                        size_t index,
                                        const uint8_t **value_out,
                                        size_t *len_out,
                                        struct ballot_error **err_out);

/**
 * Whether participant `index` leads, into `*leader_out` (only the first one
 * can; a first participant that does not is next in line while nobody leads).
 *
 * Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `list` or
 * `leader_out`; `INVALID_ARGUMENT` when `index` is not below
 * `ballot_participants_len`. `*leader_out` is written only on success.
 * Thread: any.
 *
 * # Safety
 * `list` is NULL or a live list; `leader_out` and `err_out` are NULL or writable.
 */
ballot_result ballot_participants_is_leader(const struct ballot_participants *list,
                                            size_t index,
                                            bool *leader_out,
                                            struct ballot_error **err_out);

/**
 * Frees a list returned by `ballot_election_participants`; the keys and values
 * read from it are gone with it.
 *
 * Ownership: takes `list`. NULL: no-op. Thread: any.
 *
 * # Safety
 * `list` is NULL or a list owned by the caller and not yet freed.
 */
void ballot_participants_free(struct ballot_participants *list);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* BALLOT_H */
