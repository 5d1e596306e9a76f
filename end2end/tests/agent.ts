// The agent side of the job tests, by hand: hosts are enrolled by the real `pm-agent enroll`
// (one-time token from the server's CLI), then this helper speaks the agent protocol
// (agent/src/proto/{mod,jobs}.rs) over mTLS with the agent's own key and certificate:
// check-ins with a chosen hostname and inventory, the job long poll, and job events.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { pmCli } from './server';

/** Runs `patch-manager --config <the test config> ARGS`. */
export const cli = pmCli;

export type SignedJob = { spec_b64: string; signature_b64: string; key_id: string };
export type JobSpec = { job_id: string; host_id: string; not_before: number; not_after: number; mode: string };

export class AgentHost {
  readonly hostId: string;
  private readonly port: number;
  private readonly key: Buffer;
  private readonly cert: Buffer;
  private readonly ca: Buffer;

  constructor(readonly stateDir: string, readonly hostname: string) {
    const toml = fs.readFileSync(path.join(stateDir, 'agent.toml'), 'utf8');
    this.hostId = /^host_id\s*=\s*"([^"]+)"/m.exec(toml)![1];
    this.port = Number(/^agent_url\s*=\s*"https:\/\/[^:]+:(\d+)"/m.exec(toml)![1]);
    this.key = fs.readFileSync(path.join(stateDir, 'key.pem'));
    this.cert = fs.readFileSync(path.join(stateDir, 'cert.pem'));
    this.ca = fs.readFileSync(path.join(stateDir, 'ca.pem'));
  }

  /** Enrolls a new host with the real agent (token from the CLI, optionally into a group). */
  static enroll(hostname: string, group?: string): AgentHost {
    const out = cli(['enroll-token', 'create', '--note', hostname, ...(group ? ['--group', group] : [])]);
    const command = out.split('\n').map((l) => l.trim()).find((l) => l.startsWith('pm-agent enroll '))!;
    const stateDir = fs.mkdtempSync(path.join(process.env.PM_E2E_DIR ?? os.tmpdir(), `agent-${hostname}-`));
    execFileSync(process.env.PM_AGENT_BIN!, [...command.split(/\s+/).slice(1), '--state-dir', stateDir], {
      stdio: 'inherit',
      timeout: 60_000,
    });
    return new AgentHost(stateDir, hostname);
  }

  post(p: string, body: unknown): Promise<{ status: number; body: any }> {
    const data = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          servername: 'localhost',
          port: this.port,
          path: p,
          method: 'POST',
          key: this.key,
          cert: this.cert,
          ca: this.ca,
          minVersion: 'TLSv1.3',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
          res.on('end', () => {
            let parsed: any = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // keep the text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  /** A check-in with one pending security update (openssl 3.0.11-1 -> 3.0.15-1). */
  async checkin(bootId = 'boot-1'): Promise<any> {
    const r = await this.post('/agent/v1/checkin', {
      facts: {
        hostname: this.hostname,
        os_id: 'debian',
        os_version_id: '12',
        os_pretty_name: 'Debian GNU/Linux 12 (bookworm)',
        kernel: '6.1.0-18-amd64',
        arch: 'x86_64',
        uptime_seconds: 100,
        reboot_required: false,
        agent_version: '0.1.0',
        boot_id: bootId,
      },
      inventory_digest: '',
      inventory: {
        manager: 'apt',
        installed: [
          { name: 'openssl', version: '3.0.11-1', arch: 'amd64' },
          { name: 'bash', version: '5.2.15-2', arch: 'amd64' },
        ],
        updates: [
          {
            name: 'openssl',
            arch: 'amd64',
            current_version: '3.0.11-1',
            candidate_version: '3.0.15-1',
            source: 'bookworm-security',
            security: true,
          },
        ],
      },
    });
    if (r.status !== 200) throw new Error(`check-in failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Long-polls until a job arrives (or `timeoutMs` passes); returns its decoded spec. */
  async waitForJob(timeoutMs = 20_000): Promise<JobSpec> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await this.post('/agent/v1/jobs/poll', { wait_secs: 5 });
      if (r.status !== 200) throw new Error(`poll failed: ${r.status} ${JSON.stringify(r.body)}`);
      const jobs = r.body.jobs as SignedJob[];
      if (jobs.length > 0) {
        const spec = JSON.parse(Buffer.from(jobs[0].spec_b64, 'base64').toString('utf8')) as JobSpec;
        if (spec.host_id !== this.hostId) throw new Error('a spec for another host');
        return spec;
      }
    }
    throw new Error(`${this.hostname}: no job within ${timeoutMs} ms`);
  }

  async event(jobId: string, state: string, result: unknown = null): Promise<{ proceed: boolean; duplicate: boolean }> {
    const r = await this.post('/agent/v1/jobs/event', { job_id: jobId, state, at: Math.floor(Date.now() / 1000), result });
    if (r.status !== 200) throw new Error(`event ${state} failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

/** The terminal result of a successful openssl upgrade. */
export function opensslResult(): unknown {
  const now = Math.floor(Date.now() / 1000);
  return {
    reason: 'apt-get exited with 0',
    changes: [{ name: 'openssl', arch: 'amd64', before: '3.0.11-1', after: '3.0.15-1' }],
    output: 'Unpacking openssl (3.0.15-1) over (3.0.11-1) ...\nSetting up openssl (3.0.15-1) ...\n',
    started_at: now - 2,
    finished_at: now,
    reboot_pending: false,
  };
}
