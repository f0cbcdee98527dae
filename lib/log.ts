/**
 * Logging setup: logtape with one synchronous sink on stderr, so stdout
 * carries nothing but the guest console, and messages written just before
 * the process exits are not lost.
 *
 * @module
 */
import { configure, type LogLevel, type LogRecord, reset } from "@logtape/logtape";
import { escapeText } from "./quote.ts";

const LEVEL_NAMES: Record<LogLevel, string> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warning: "warning",
  error: "error",
  fatal: "fatal",
};

function render(record: LogRecord): string {
  let text = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    // Values come from outside (paths, guest and user text): no raw control or bidi characters.
    text += i % 2 === 0
      ? String(part)
      : escapeText(typeof part === "string" ? part : Deno.inspect(part, { colors: false }));
  }
  return text;
}

/** Configures logging for the CLI: `level` and up go to stderr. */
export async function setupLogging(level: LogLevel, timestamps = false): Promise<void> {
  const enc = new TextEncoder();
  await configure({
    reset: true,
    sinks: {
      stderr(record: LogRecord) {
        const time = timestamps ? `${new Date(record.timestamp).toISOString().slice(11, 23)} ` : "";
        const where = record.category.slice(1).join(".");
        const line = `${time}dhyve${where ? ` ${where}` : ""}: ${LEVEL_NAMES[record.level]}: ${
          render(record)
        }\n`;
        try {
          Deno.stderr.writeSync(enc.encode(line));
        } catch {
          // stderr closed: nothing sensible left to do
        }
      },
    },
    loggers: [
      { category: ["dhyve"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** Removes the logging configuration (tests). */
export async function resetLogging(): Promise<void> {
  await reset();
}
