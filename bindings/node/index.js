'use strict'
// The public surface of the `ballot` package: Promises, an EventEmitter per
// election, async iterators, AbortSignal, and errors with a stable `code`.
// Everything here is conversion and error mapping over the native addon
// (src/lib.rs), which wraps the Rust core; the election logic lives in core.

const { EventEmitter } = require('node:events')
const native = require('./native.js')

// Error codes, event names and option keys all come from the core's table, spelt
// by Node's rules in the addon: codes `BALLOT_` + the kind in capitals, event
// names and option keys in lowerCamelCase (`leader_changed` -> 'leaderChanged'),
// and `Ms` after a duration option, which takes milliseconds.
const TABLE = native.table()

/** Every error code, one per core ErrorKind, e.g. 'BALLOT_NOT_LEADER'. */
const ERROR_CODES = Object.freeze(TABLE.errors.map((e) => e.jsName))

/** The event names an Election emits, one per core event kind, e.g. 'leaderChanged'. */
const EVENT_NAMES = Object.freeze(TABLE.events.map((e) => e.jsName))

/** Old event names still emitted beside the new ones, and their replacements. */
const DEPRECATED_EVENTS = Object.freeze({ leader: 'leaderChanged' })

/** Every event name a listener can subscribe to. */
const EVENTS = new Set([...EVENT_NAMES, ...Object.keys(DEPRECATED_EVENTS)])

/** connect()'s option keys and the core option each one sets. */
const OPTION_KEYS = new Map(TABLE.options.map((o) => [o.jsName, o.name]))

/** The states in which an election wants to lead. */
const ACTIVE = new Set(['campaigning', 'leader', 'suspended'])

/**
 * Elections that campaign or lead. Collecting an election resigns it (its native
 * finalizer drops the handle), silently, and an election without listeners may be
 * referenced by nothing else: this set keeps each one reachable until it resigns,
 * ends or is closed, or its client is closed. Module-level, so that a client that is
 * itself unreachable does not take its leading elections with it. It holds no
 * handle of the event loop: it never keeps the process alive.
 */
const HELD = new Set()

/**
 * The one error class of the package. `code` is stable: `BALLOT_` and the core
 * ErrorKind in capitals (see ERROR_CODES).
 */
class BallotError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.name = 'BallotError'
    this.code = code
  }
}

const invalid = (message) => new BallotError('BALLOT_INVALID_ARGUMENT', message)

// napi-rs's own argument conversion failures (a wrong JS type reaching the addon)
// carry napi status names as their code; they are all bad input.
const NAPI_INPUT_CODES = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
])

/** Turns an error thrown by the addon into a BallotError with a stable code. */
function convertError(err) {
  if (err instanceof BallotError) return err
  const message = err instanceof Error ? err.message : String(err)
  const m = /^\[(BALLOT_[A-Z_]+)\] ([\s\S]*)$/.exec(message)
  if (m && ERROR_CODES.includes(m[1])) return new BallotError(m[1], m[2])
  if (err && NAPI_INPUT_CODES.has(err.code)) return invalid(message)
  return new BallotError('BALLOT_INTERNAL', message, { cause: err })
}

function callSync(fn) {
  try {
    return fn()
  } catch (err) {
    throw convertError(err)
  }
}

async function call(fn) {
  try {
    return await fn()
  } catch (err) {
    throw convertError(err)
  }
}

/** A Buffer, a Uint8Array or a string (UTF-8) as the bytes the core stores. */
function toValue(value) {
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  throw invalid(`a value must be a Buffer, a Uint8Array or a string, got ${describe(value)}`)
}

function describe(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? `an object (${v.constructor?.name ?? 'no prototype'})` : `${typeof v} ${String(v)}`
}

/** Checks an options object: undefined, or a plain object with only known keys. */
function checkOptions(options, known, where) {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`${where} options must be an object, got ${describe(options)}`)
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw invalid(`${where}: unknown option '${key}' (known: ${known.join(', ')})`)
  }
  for (const key of known) {
    const v = options[key]
    if (v !== undefined && v !== null && key.endsWith('Ms') && typeof v !== 'number') {
      throw invalid(`${where}: ${key} must be a number of milliseconds, got ${describe(v)}`)
    }
  }
  return options
}

/**
 * Connects to a backend and starts its session.
 * @param {string} [url] backend URL; default: the local backend (defaultBackendUrl())
 * @param {object} [options] one key per core option: ttlMs, safetyMarginMs, connectTimeoutMs,
 *   autoRequeue, username, password, token, tlsCa, tlsCert, tlsKey. A value the URL
 *   also gives must be the same there; contradictions are refused.
 * @returns {Promise<Client>}
 */
async function connect(url, options) {
  if (url === undefined) url = native.defaultBackendUrl()
  if (typeof url !== 'string') throw invalid(`the backend URL must be a string, got ${describe(url)}`)
  // Each key names a core option, which parses and checks the value.
  const settings = Object.entries(checkOptions(options, [...OPTION_KEYS.keys()], 'connect'))
    .filter(([, value]) => value !== undefined && value !== null)
    .map(([key, value]) => ({ name: OPTION_KEYS.get(key), value }))
  const inner = await call(() => native.connect(url, settings))
  return new Client(inner)
}

/** A connection to one backend with one session, kept alive by the library. */
class Client {
  #inner
  #elections = new Set()

  /** @internal use connect() */
  constructor(inner) {
    if (!(inner instanceof native.Client)) throw invalid('use ballot.connect() to make a Client')
    this.#inner = inner
  }

  /** The backend URL with secrets redacted. */
  get url() {
    return this.#inner.url
  }

  /**
   * A handle on election `name`: an EventEmitter. Throws BALLOT_INVALID_ARGUMENT
   * for a bad name, BALLOT_CLOSED after close().
   */
  election(name) {
    if (typeof name !== 'string') throw invalid(`an election name must be a string, got ${describe(name)}`)
    const e = new Election(callSync(() => this.#inner.election(name)))
    this.#elections.add(new WeakRef(e))
    return e
  }

  /**
   * memory:// only: the session expires now, as a server expires a silent
   * client's session: each election that led emits 'lost' (reason
   * 'session_lost'), the next candidates lead, and a new session starts (with
   * autoRequeue, elections that led campaign again). Throws
   * BALLOT_INVALID_ARGUMENT for another backend. Never waits.
   */
  expireSession() {
    callSync(() => this.#inner.expireSession())
  }

  /**
   * Resigns and withdraws every election of this client, releases the session and
   * stops every event subscription. Afterwards nothing of ballot keeps the process
   * alive. Idempotent.
   */
  async close() {
    try {
      await call(() => this.#inner.close())
    } finally {
      for (const ref of this.#elections) ref.deref()?._release()
      this.#elections.clear()
    }
  }
}

/**
 * One participant in an election, and an EventEmitter of the core's event kinds
 * in lowerCamelCase: 'elected' ({term}), 'suspended', 'reconnected', 'lost'
 * ({reason}), 'resigned', 'leaderChanged' (Leader | null), 'ended', 'error'
 * (BallotError). 'leader' is the deprecated name of 'leaderChanged' and still
 * works. A kind added to the core later is emitted by its name, without payload.
 *
 * Events are delivered in order on the JavaScript thread. A listener that throws
 * is reported through 'error' (or, without an 'error' listener, as a process
 * warning); it never crashes the process.
 *
 * While it campaigns or leads, an election stays alive without any reference to it
 * (see HELD) until it resigns, ends or is closed, or its client is closed.
 */
class Election extends EventEmitter {
  #inner
  #sub = null
  #released = false
  #campaigns = 0

  /** @internal use client.election() */
  constructor(inner) {
    super()
    if (!(inner instanceof native.Election)) throw invalid('use client.election() to make an Election')
    this.#inner = inner
    // The native subscription starts with the first listener of a ballot event,
    // so handles nobody listens to cost nothing.
    this.on('newListener', (event) => {
      if (event in DEPRECATED_EVENTS) warnDeprecated(event)
      if (EVENTS.has(event)) this.#subscribe()
    })
  }

  /** The election name. */
  get name() {
    return this.#inner.name
  }

  /** 'idle', 'campaigning', 'leader', 'suspended', 'ended' or 'closed'. */
  get state() {
    return this.#inner.state
  }

  /**
   * Campaigns with `value` and resolves with the Leadership once elected.
   * `signal` (an AbortSignal) withdraws the candidate and rejects with
   * BALLOT_CANCELLED; `timeoutMs` rejects with BALLOT_TIMEOUT after withdrawing.
   */
  async campaign(value, options) {
    const { signal, timeoutMs } = checkOptions(options, ['signal', 'timeoutMs'], 'campaign')
    const buf = toValue(value)
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw invalid(`campaign: signal must be an AbortSignal, got ${describe(signal)}`)
    }
    const aborted = () => new BallotError('BALLOT_CANCELLED', 'the campaign was aborted', { cause: signal.reason })
    if (signal?.aborted) throw aborted()
    const token = signal ? new native.CancelToken() : undefined
    const onAbort = () => token.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    this.#hold()
    this.#campaigns += 1
    try {
      const lead = await call(() => this.#inner.campaign(buf, timeoutMs, token))
      if (signal?.aborted) {
        // The win and the abort crossed: the caller asked to withdraw before it
        // saw the win, so give the leadership back.
        await this.#inner.resign().catch(() => {})
        throw aborted()
      }
      return lead
    } catch (err) {
      if (err.code === 'BALLOT_CANCELLED' && signal?.aborted && err.cause === undefined) throw aborted()
      throw err
    } finally {
      this.#campaigns -= 1
      this.#settle()
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Replaces the leader's value; the term stays. BALLOT_NOT_LEADER unless leading. */
  async proclaim(value) {
    const buf = toValue(value)
    return call(() => this.#inner.proclaim(buf))
  }

  /** Gives up leadership, or withdraws a waiting candidate. */
  async resign() {
    try {
      return await call(() => this.#inner.resign())
    } finally {
      this.#settle()
    }
  }

  /** The current leader ({ value: Buffer, term: bigint, key }) or null. */
  async leader() {
    return call(() => this.#inner.leader())
  }

  /**
   * The candidates in queue order, the leader first: an array of
   * { key, value: Buffer, leader: boolean } (empty when nobody campaigns).
   * Rejects with BALLOT_ENDED once this handle saw the election ended,
   * BALLOT_CLOSED after close().
   */
  async participants() {
    return call(() => this.#inner.participants())
  }

  /** Ends the election for every participant: each gets 'ended'. */
  async end() {
    try {
      return await call(() => this.#inner.end())
    } finally {
      this.#settle()
    }
  }

  /** Closes this handle (withdraws or resigns). Idempotent. */
  async close() {
    try {
      await call(() => this.#inner.close())
    } finally {
      this._release()
    }
  }

  /**
   * An async iterator over the leader: the current one first (null: none), then
   * each change, never going back in term. It finishes when the election ends or
   * the handle is closed, or when the loop is left (`break`).
   */
  observe() {
    const obs = callSync(() => this.#inner.observe())
    return {
      [Symbol.asyncIterator]() {
        return this
      },
      async next() {
        const step = await call(() => obs.next())
        if (step.done) return { done: true, value: undefined }
        return { done: false, value: step.leader ?? null }
      },
      async return() {
        obs.close()
        return { done: true, value: undefined }
      },
    }
  }

  /** Keeps this election reachable while it campaigns or leads (see HELD). */
  #hold() {
    if (this.#released) return
    // Elections that stopped wanting to lead without a call here (a loss without
    // requeue, an end seen by no listener) are let go as later campaigns come.
    for (const e of HELD) {
      if (e !== this) e.#settle()
    }
    HELD.add(this)
  }

  /** Lets this election go once it neither campaigns nor leads. */
  #settle() {
    if (this.#campaigns === 0 && !ACTIVE.has(this.#inner.state)) HELD.delete(this)
  }

  #subscribe() {
    if (this.#sub || this.#released) return
    this.#sub = callSync(() => this.#inner.subscribe((ev) => this.#dispatch(ev)))
  }

  #dispatch(ev) {
    switch (ev.kind) {
      case 'elected':
        return this.#emitSafely('elected', { term: ev.term })
      case 'lost':
        return this.#emitSafely('lost', { reason: ev.reason })
      case 'leaderChanged':
        this.#emitSafely('leaderChanged', ev.leader ?? null)
        return this.#emitSafely('leader', ev.leader ?? null)
      case 'error':
        return this.#emitSafely('error', convertError(new Error(ev.error)))
      case 'ended':
        this.#emitSafely('ended')
        return this._release()
      default:
        return this.#emitSafely(ev.kind)
    }
  }

  #emitSafely(name, ...args) {
    try {
      this.emit(name, ...args)
    } catch (err) {
      this.#report(name, err)
    }
  }

  #report(name, err) {
    if (name !== 'error' && this.listenerCount('error') > 0) {
      try {
        this.emit('error', err)
        return
      } catch (err2) {
        err = err2
      }
    }
    // Nowhere left to report it: warn instead of crashing the process.
    process.emitWarning(`a ballot '${name}' listener of election '${this.name}' threw: ${err?.stack ?? err}`, {
      type: 'BallotWarning',
    })
  }

  /** @internal stops the event subscription and lets the election go (after close or 'ended'). */
  _release() {
    this.#released = true
    HELD.delete(this)
    this.#sub?.close()
    this.#sub = null
  }
}

const warned = new Set()
/** Warns once per process that an old event name is used. */
function warnDeprecated(event) {
  if (warned.has(event)) return
  warned.add(event)
  process.emitWarning(`the '${event}' event is deprecated: listen to '${DEPRECATED_EVENTS[event]}'`, {
    type: 'DeprecationWarning',
    code: `BALLOT_DEP_${event.toUpperCase()}_EVENT`,
  })
}

/** Log levels, most important first ('off' turns records off). */
const LOG_LEVELS = Object.freeze(['error', 'warn', 'info', 'debug', 'trace'])

/**
 * Sends ballot's log records (state changes, session trouble, requeues, errors;
 * never a secret or a value) to `logger`, called on the event loop with one object
 * per record: `{ level, message, backend, election }` (`backend` and `election`
 * may be null). Records below `options.level` ('info' by default; one of
 * LOG_LEVELS, or 'off') are not made at all. An exception thrown by `logger`
 * becomes a process warning. `setLogger(null)` goes back to the default: stderr
 * at the level the environment variable BALLOT_LOG names, or nothing.
 * @param {((record: object) => void) | null} logger
 * @param {{ level?: string }} [options]
 */
function setLogger(logger, options) {
  const { level = 'info' } = checkOptions(options, ['level'], 'setLogger')
  if (logger === null || logger === undefined) return callSync(() => native.setLogger(null, null))
  if (typeof logger !== 'function') throw invalid(`setLogger needs a function or null, got ${describe(logger)}`)
  if (typeof level !== 'string') throw invalid(`setLogger: level must be a string, got ${describe(level)}`)
  const deliver = (record) => {
    try {
      logger(record)
    } catch (err) {
      process.emitWarning(`ballot: the logger threw: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  return callSync(() => native.setLogger(level, deliver))
}

/**
 * Every metric family of ballot in this process (each client and election handle)
 * in the Prometheus text exposition format 0.0.4, to serve with
 * `Content-Type: text/plain; version=0.0.4`. Read at the call; nothing is kept
 * between calls.
 * @returns {string}
 */
function metricsText() {
  return callSync(() => native.metricsText())
}

/**
 * The same families as data: `[{ name, help, type, samples: [{ labels, value,
 * buckets, count }] }]`, `labels` an object, `buckets` `[{ le, count }]` for a
 * histogram (the last `le` is Infinity) and null otherwise.
 */
function metricsSnapshot() {
  return callSync(() => native.metricsSnapshot()).map((f) => ({
    name: f.name,
    help: f.help,
    type: f.type,
    samples: f.samples.map((s) => ({
      labels: Object.fromEntries(s.labels.map((l) => [l.name, l.value])),
      value: s.value,
      buckets: s.buckets ? s.buckets.map((b) => ({ le: b.le, count: b.count })) : null,
      count: s.count,
    })),
  }))
}

/** A family as prom-client's `metric.get()` gives one (histograms as `_bucket`, `_sum`, `_count` values). */
function promValues(f) {
  if (f.type !== 'histogram') return f.samples.map((s) => ({ labels: s.labels, value: s.value }))
  const out = []
  for (const s of f.samples) {
    for (const b of s.buckets) {
      out.push({ metricName: `${f.name}_bucket`, labels: { ...s.labels, le: b.le === Infinity ? '+Inf' : b.le }, value: b.count })
    }
    out.push({ metricName: `${f.name}_sum`, labels: s.labels, value: s.value })
    out.push({ metricName: `${f.name}_count`, labels: s.labels, value: s.count })
  }
  return out
}

/**
 * ballot's families as metrics a prom-client `Registry` accepts
 * (`registry.registerMetric(m)` for each, or `registerMetrics(registry)`): each has
 * `name`, `help`, `type` and an async `get()` that reads ballot's state at the
 * scrape. A registry holding them can be combined with others by
 * `Registry.merge`. prom-client itself is not a dependency of ballot.
 */
function promMetrics() {
  return callSync(() => native.metricsSnapshot()).map((f) => ({
    name: f.name,
    help: f.help,
    type: f.type,
    aggregator: 'sum',
    async get() {
      const now = metricsSnapshot().find((x) => x.name === f.name)
      return { name: f.name, help: f.help, type: f.type, aggregator: 'sum', values: now ? promValues(now) : [] }
    },
    reset() {},
  }))
}

/**
 * Registers ballot's families (`promMetrics()`) with a prom-client registry, such
 * as prom-client's default `register`.
 * @param {{ registerMetric: (metric: object) => void }} registry
 */
function registerMetrics(registry) {
  if (!registry || typeof registry.registerMetric !== 'function') {
    throw invalid(`registerMetrics needs a prom-client Registry, got ${describe(registry)}`)
  }
  for (const m of promMetrics()) registry.registerMetric(m)
}

// BALLOT_LOG=debug prints records to stderr from the start. A bad value must not
// stop the program from loading: it is a warning.
try {
  native.setLogger(null, null)
} catch (err) {
  process.emitWarning(`ballot: ${convertError(err).message}`)
}
// Records cross a library thread: those made before exit are printed first.
process.on('exit', () => native.flushLogs(1000))

module.exports = {
  setLogger,
  metricsText,
  metricsSnapshot,
  promMetrics,
  registerMetrics,
  LOG_LEVELS,
  connect,
  Client,
  Election,
  BallotError,
  ERROR_CODES,
  EVENT_NAMES,
  version: native.version(),
  defaultBackendUrl: native.defaultBackendUrl,
}
