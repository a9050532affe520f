import { chown, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChecked, runProgram, sleep } from './process.js';

/** The Unix account that plays the OT asset's login in every SSH test. */
export const ASSET_USER_NAME = 'airlock-asset';
/**
 * Test-only password of that account, shared by every fixture instance so that
 * parallel test files never change it under each other. It is distinctive on
 * purpose: tests that prove credentials never leak (invariant 6) grep for it.
 * The account only accepts logins through the fixture's sshd on 127.0.0.1.
 */
export const ASSET_USER_PASSWORD = 'asset-TEST-ONLY-pw-5c1e9a';

/** Bumped whenever the dotfiles or password change, so old homes are redone. */
const SETUP_VERSION = 'airlock-asset-fixture v1';

/**
 * Interactive shells get a fixed prompt and a history file per fixture
 * instance (history is exactly "the line as submitted"), then every shell the
 * fixture's sshd starts sources the instance's hook, which installs the DEBUG
 * trap that logs executed commands. The hook is sourced last so that nothing
 * in the startup files themselves is logged. Debian's bash also reads
 * ~/.bashrc for `ssh host cmd` (SSH_SOURCE_BASHRC); BASH_ENV covers builds
 * that do not, and the hook runs once either way.
 */
const BASHRC = `# Written by @airlock/test-support (src/ssh/asset-user.ts). This account is a
# test fixture: the OT asset behind Airlock's SSH gateway. Do not edit by hand.
case $- in
  *i*)
    PS1='asset$ '
    PS2='> '
    unset HISTCONTROL HISTIGNORE HISTTIMEFORMAT
    HISTSIZE=100000
    HISTFILESIZE=100000
    shopt -s histappend
    if [ -n "\${AIRLOCK_HISTLOG:-}" ]; then HISTFILE="$AIRLOCK_HISTLOG"; fi
    PROMPT_COMMAND='history -a'
    ;;
esac
if [ -n "\${AIRLOCK_HOOK:-}" ] && [ -r "$AIRLOCK_HOOK" ]; then . "$AIRLOCK_HOOK"; fi
`;

// Login shells read this (not ~/.profile); it must end by sourcing ~/.bashrc.
const BASH_PROFILE = `# Written by @airlock/test-support. See ~/.bashrc.
. ~/.bashrc
`;

// Debian's default runs clear_console at logout, which writes escape
// sequences into the session; the asset should end sessions quietly.
const BASH_LOGOUT = `# Written by @airlock/test-support. Intentionally empty.
`;

export interface AssetUser {
  readonly name: string;
  readonly password: string;
  readonly uid: number;
  readonly gid: number;
  readonly homeDir: string;
}

interface PasswdEntry {
  uid: number;
  gid: number;
  homeDir: string;
  shell: string;
}

async function passwdEntry(name: string): Promise<PasswdEntry | null> {
  const result = await runProgram('getent', ['passwd', name]);
  if (result.code !== 0) return null;
  const fields = result.stdout.trim().split(':');
  return {
    uid: Number(fields[2]),
    gid: Number(fields[3]),
    homeDir: fields[5] ?? `/home/${name}`,
    shell: fields[6] ?? '',
  };
}

/**
 * Serialises account setup across processes (vitest runs test files in
 * parallel forks). A directory is the lock: mkdir is atomic. A lock older
 * than 30 s is taken to be left by a killed process.
 */
async function withSetupLock<T>(fn: () => Promise<T>): Promise<T> {
  const lockDir = join(tmpdir(), `${ASSET_USER_NAME}-setup.lock`);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await mkdir(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const info = await stat(lockDir).catch(() => null);
      if (info && Date.now() - info.mtimeMs > 30_000) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for the lock ${lockDir}`, { cause: err });
      await sleep(25 + Math.random() * 50);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

async function writeIfChanged(
  path: string,
  content: string,
  uid: number,
  gid: number,
): Promise<void> {
  const current = await readFile(path, 'utf8').catch(() => null);
  if (current === content) return;
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, content, { mode: 0o644 });
  await chown(temp, uid, gid);
  await rename(temp, path);
}

async function setUp(): Promise<AssetUser> {
  let entry = await passwdEntry(ASSET_USER_NAME);
  if (!entry) {
    const created = await runProgram('useradd', ['-m', '-s', '/bin/bash', ASSET_USER_NAME]);
    // Exit 9: created meanwhile by a process that does not share our lock.
    if (created.code !== 0 && created.code !== 9)
      throw new Error(`useradd ${ASSET_USER_NAME} failed: ${created.stderr.trim()}`);
    entry = await passwdEntry(ASSET_USER_NAME);
    if (!entry) throw new Error(`user ${ASSET_USER_NAME} missing right after useradd`);
  }
  if (entry.shell !== '/bin/bash')
    await runChecked('usermod', ['-s', '/bin/bash', ASSET_USER_NAME]);
  await mkdir(entry.homeDir, { recursive: true, mode: 0o755 });
  await chown(entry.homeDir, entry.uid, entry.gid);

  const marker = join(entry.homeDir, '.airlock-fixture');
  if ((await readFile(marker, 'utf8').catch(() => null)) !== SETUP_VERSION) {
    // Also unlocks the account: useradd leaves it locked ('!'), and with
    // UsePAM no sshd refuses even public-key logins to a locked account.
    await runChecked('chpasswd', [], `${ASSET_USER_NAME}:${ASSET_USER_PASSWORD}\n`);
  }
  await writeIfChanged(join(entry.homeDir, '.bashrc'), BASHRC, entry.uid, entry.gid);
  await writeIfChanged(join(entry.homeDir, '.bash_profile'), BASH_PROFILE, entry.uid, entry.gid);
  await writeIfChanged(join(entry.homeDir, '.bash_logout'), BASH_LOGOUT, entry.uid, entry.gid);
  await writeIfChanged(marker, SETUP_VERSION, entry.uid, entry.gid);
  return {
    name: ASSET_USER_NAME,
    password: ASSET_USER_PASSWORD,
    uid: entry.uid,
    gid: entry.gid,
    homeDir: entry.homeDir,
  };
}

let ready: Promise<AssetUser> | undefined;

/** Creates and prepares the asset account once per process; idempotent across processes. */
export function ensureAssetUser(): Promise<AssetUser> {
  ready ??= withSetupLock(setUp).catch((err: unknown) => {
    ready = undefined;
    throw err;
  });
  return ready;
}
