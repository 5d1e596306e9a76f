// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) with node:crypto, for the login tests.
import { createHmac } from 'node:crypto';

export const STEP_SECONDS = 30;

export function base32Decode(input: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = input.toUpperCase().replace(/[\s=-]/g, '');
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of clean) {
    const idx = alphabet.indexOf(ch);
    if (idx < 0) throw new Error(`invalid base32 character ${JSON.stringify(ch)}`);
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export function currentStep(nowMs = Date.now()): number {
  return Math.floor(nowMs / 1000 / STEP_SECONDS);
}

export function hotp(secret: Buffer, counter: number, digits = 6): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', secret).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin =
    ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(bin % 10 ** digits).padStart(digits, '0');
}

export function totp(secretBase32: string, step = currentStep()): string {
  return hotp(base32Decode(secretBase32), step);
}

/** Waits until the TOTP step is later than `usedStep` (a code is accepted only once). */
export async function waitForStepAfter(usedStep: number): Promise<number> {
  for (;;) {
    const step = currentStep();
    if (step > usedStep) return step;
    const msToNext = (step + 1) * STEP_SECONDS * 1000 - Date.now();
    await new Promise((r) => setTimeout(r, Math.max(50, msToNext + 200)));
  }
}

/**
 * A code that stays valid long enough to be typed and checked: if the current step ends within
 * `marginMs`, waits for the next one first.
 */
export async function freshCode(secretBase32: string, notBeforeStep = -1, marginMs = 4000): Promise<{ code: string; step: number }> {
  let step = await waitForStepAfter(notBeforeStep);
  const msLeft = (step + 1) * STEP_SECONDS * 1000 - Date.now();
  if (msLeft < marginMs) step = await waitForStepAfter(step);
  return { code: totp(secretBase32, step), step };
}
