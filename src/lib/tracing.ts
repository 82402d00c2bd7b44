// Traces across XSM's whole path: one trace follows a change from the HTTP request through the apply job and
// each VM or deploy job, its durable steps, down to the `xl`, SSH and power calls, with the host, VM,
// version and step as attributes (xsm.host, xsm.vm, xsm.version, xsm.step). BullMQ carries the trace
// context inside each job (bullmq-otel), so a job run on another Dom0 joins the trace of the request that
// queued it. Exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set; when it
// is not, no SDK starts and every span below is OpenTelemetry's no-op: near free (bench/tracing-overhead.ts).

import {
  context,
  INVALID_SPAN_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
} from '@opentelemetry/api';
import { BullMQOtel } from 'bullmq-otel';

/** Span attribute names, one spelling everywhere. */
export const ATTR = {
  host: 'xsm.host',
  vm: 'xsm.vm',
  version: 'xsm.version',
  step: 'xsm.step',
  workflow: 'xsm.workflow',
  job: 'xsm.job',
  action: 'xsm.action',
} as const;

let telemetry: BullMQOtel | undefined;
let shutdownHook: (() => Promise<void>) | undefined;

/** True when this process exports traces. */
export function tracingEnabled(): boolean {
  return telemetry !== undefined;
}

/**
 * Starts exporting traces when the environment asks for it (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_SERVICE_NAME names the process, default `service`). Call once,
 * first thing in a process, before queues and workers are made: they pick up BullMQ's telemetry then.
 */
export async function startTracing(service: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (telemetry) return true;
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint) return false;
  // Loaded only when tracing is on: a process without an endpoint never pays for the SDK.
  const [{ NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
  // As the OTLP specification says: the traces endpoint as given, or the general one with /v1/traces.
  const url = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? `${endpoint.replace(/\/$/, '')}/v1/traces`;
  const exporter = new OTLPTraceExporter({ url });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? service }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 500 })],
  });
  provider.register();
  telemetry = new BullMQOtel({ tracerName: 'xsm-bullmq' });
  shutdownHook = async () => {
    await provider.forceFlush();
    await provider.shutdown();
  };
  return true;
}

/** Sends what is buffered (a test reads it at once; a process exiting must not lose its last spans). */
export async function flushTracing(): Promise<void> {
  const provider = trace.getTracerProvider() as { forceFlush?: () => Promise<void> };
  await provider.forceFlush?.();
}

export async function stopTracing(): Promise<void> {
  await shutdownHook?.();
  shutdownHook = undefined;
  telemetry = undefined;
}

/** The `telemetry` option for BullMQ's Queue, Worker and FlowProducer: set only when tracing is on. */
export function bullmqTelemetry(): { telemetry: BullMQOtel } | Record<string, never> {
  return telemetry ? { telemetry } : {};
}

const tracer = () => trace.getTracer('xsm');
/** What `inSpan` hands its callback when tracing is off: one non-recording span for every call. */
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

interface HttpRequestLike {
  method: string;
  originalUrl: string;
  route?: { path?: unknown };
  baseUrl?: string;
}
interface HttpResponseLike {
  statusCode: number;
  on(event: 'finish' | 'close', fn: () => void): unknown;
}

/**
 * Express middleware: one server span per request, active while the route runs, so the jobs it queues
 * carry its trace. Named by method and route (`POST /api/vms/:name/migrate`) once the route is known.
 */
export function httpSpans(): (req: HttpRequestLike, res: HttpResponseLike, next: () => void) => void {
  return (req, res, next) => {
    if (!telemetry) return next();
    const path = req.originalUrl.split('?')[0]!;
    const span = tracer().startSpan(`${req.method} ${path}`, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': req.method, 'url.path': path },
    });
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const route = typeof req.route?.path === 'string' ? `${req.baseUrl ?? ''}${req.route.path}` : undefined;
      if (route) {
        span.setAttribute('http.route', route);
        span.updateName(`${req.method} ${route}`);
      }
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    res.on('finish', end);
    res.on('close', end);
    context.with(trace.setSpan(context.active(), span), next);
  };
}

/**
 * Runs `fn` inside a span that is the active one meanwhile (so spans started inside, and jobs queued inside,
 * are its children); records a thrown error on it. With tracing off this is a plain call.
 */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!telemetry) return fn(NO_SPAN);
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.recordException(e instanceof Error ? e : new Error(String(e)));
      span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
      throw e;
    } finally {
      span.end();
    }
  });
}

/**
 * Wraps every method of a driver (hypervisor, SSH, power) so each call is a span named `PREFIX.method` with
 * `attributes` and, when its first argument is a VM name, xsm.vm. With tracing off the driver is returned
 * as it is.
 */
export function tracedDriver<T extends object>(driver: T, prefix: string, attributes: Attributes): T {
  if (!telemetry) return driver;
  return new Proxy(driver, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function' || typeof key !== 'string') return value;
      return (...args: unknown[]) => {
        const result = (): unknown => (value as (...a: unknown[]) => unknown).apply(target, args);
        // Calls outside any traced work (the agent's heartbeat listing domains) would each start a trace
        // of their own: noise. Only calls made on behalf of a request or job become spans.
        if (!trace.getSpan(context.active())) return result();
        const vm = typeof args[0] === 'string' ? { [ATTR.vm]: args[0] } : {};
        // A call that returns a promise ends its span when the promise settles.
        let span: Span | undefined;
        const out = context.with(context.active(), () => {
          span = tracer().startSpan(`${prefix}.${key}`, { attributes: { ...attributes, ...vm } });
          return context.with(trace.setSpan(context.active(), span), result);
        });
        if (!(out instanceof Promise)) {
          span!.end();
          return out;
        }
        return out.then(
          (v) => {
            span!.end();
            return v;
          },
          (e: unknown) => {
            span!.recordException(e instanceof Error ? e : new Error(String(e)));
            span!.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
            span!.end();
            throw e;
          },
        );
      };
    },
  });
}
