#include "store/sqlite/migrations.h"

#include <array>

namespace vmctl::sqlite {
namespace {

constexpr std::string_view kV1 = R"sql(
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  email TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE TABLE ssh_keys (
  fingerprint TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  public_key TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX ssh_keys_user ON ssh_keys(user_id);
CREATE TABLE quotas (
  user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  max_vms INTEGER NOT NULL CHECK (max_vms >= 0),
  max_cpus INTEGER NOT NULL CHECK (max_cpus >= 0),
  max_memory_mib INTEGER NOT NULL CHECK (max_memory_mib >= 0),
  max_disk_mib INTEGER NOT NULL CHECK (max_disk_mib >= 0)
);
CREATE TABLE images (
  name TEXT PRIMARY KEY,
  input_hash TEXT NOT NULL,
  dir TEXT NOT NULL,
  kernel TEXT NOT NULL,
  initramfs TEXT NOT NULL,
  rootfs TEXT NOT NULL,
  kernel_version TEXT NOT NULL,
  source TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE vms (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES users(id),
  name TEXT NOT NULL,
  image TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN
    ('creating','starting','running','stopping','stopped','failed','deleting')),
  cpus INTEGER NOT NULL CHECK (cpus > 0),
  memory_mib INTEGER NOT NULL CHECK (memory_mib > 0),
  disk_mib INTEGER NOT NULL CHECK (disk_mib > 0),
  backend TEXT NOT NULL,
  pid INTEGER NOT NULL DEFAULT 0,
  pid_start_time INTEGER NOT NULL DEFAULT 0,
  api_socket TEXT NOT NULL DEFAULT '',
  agent_socket TEXT NOT NULL DEFAULT '',
  runtime_dir TEXT NOT NULL DEFAULT '',
  root_disk TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (owner, name)
);
CREATE TABLE shares (
  vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (vm_id, user_id)
);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  vm_id TEXT NOT NULL,
  vm_name TEXT NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX events_vm ON events(vm_id, id);
)sql";

// Networking: each VM's TAP, MAC, pool address (unique while set) and bandwidth limit.
constexpr std::string_view kV2 = R"sql(
ALTER TABLE vms ADD COLUMN tap TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN mac TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN address TEXT;
ALTER TABLE vms ADD COLUMN bandwidth_kbit INTEGER NOT NULL DEFAULT 0 CHECK (bandwidth_kbit >= 0);
CREATE UNIQUE INDEX vms_address ON vms(address) WHERE address IS NOT NULL;
)sql";

// Storage: root and data disk sizes, the data disk, the volume backend, the image build each VM
// was cloned from (VMs made before this keep booting the image's build of that time), and image
// configs.
constexpr std::string_view kV3 = R"sql(
ALTER TABLE vms RENAME COLUMN disk_mib TO root_disk_mib;
ALTER TABLE vms ADD COLUMN data_disk_mib INTEGER NOT NULL DEFAULT 0 CHECK (data_disk_mib >= 0);
ALTER TABLE vms ADD COLUMN data_disk TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN storage TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN image_dir TEXT NOT NULL DEFAULT '';
UPDATE vms SET image_dir = COALESCE((SELECT dir FROM images WHERE images.name = vms.image), '');
UPDATE vms SET storage = CASE WHEN root_disk LIKE '%.qcow2' THEN 'qcow2' ELSE 'copy' END
  WHERE root_disk != '';
ALTER TABLE images ADD COLUMN config TEXT NOT NULL DEFAULT '{}';
)sql";

// SSH gateway: an email belongs to one user (registration by email), keys are looked up by
// fingerprint (already the primary key).
constexpr std::string_view kV4 = R"sql(
CREATE UNIQUE INDEX users_email ON users(email) WHERE email != '';
)sql";

// SSH proxy: each VM's gateway address (unique among its owner's VMs) and its pinned host keys.
constexpr std::string_view kV5 = R"sql(
ALTER TABLE vms ADD COLUMN ssh_address TEXT;
ALTER TABLE vms ADD COLUMN ssh_host_keys TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX vms_ssh_address ON vms(owner, ssh_address) WHERE ssh_address IS NOT NULL;
)sql";

// Registration policy: keys waiting for an email confirmation, and emails compared with their
// domain in lowercase (as NormalizeEmail stores them; rows that would then clash keep theirs).
constexpr std::string_view kV6 = R"sql(
CREATE TABLE pending_registrations (
  fingerprint TEXT PRIMARY KEY,
  public_key TEXT NOT NULL,
  email TEXT NOT NULL,
  code TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  failed_attempts INTEGER NOT NULL DEFAULT 0
);
UPDATE users
  SET email = substr(email, 1, instr(email, '@')) || lower(substr(email, instr(email, '@') + 1))
  WHERE instr(email, '@') > 0 AND NOT EXISTS (
    SELECT 1 FROM users AS other WHERE other.id != users.id AND other.email =
      substr(users.email, 1, instr(users.email, '@')) ||
      lower(substr(users.email, instr(users.email, '@') + 1)));
)sql";

// Web authentication: one-time login links, browser sessions (one per host; a VM host's session
// derives from the DOMAIN session it came through, and is revoked with it), single-use host
// tickets that carry a DOMAIN session to a VM host, and API tokens (optionally limited to one VM,
// going with it). Only SHA-256 hashes of the secrets are stored.
constexpr std::string_view kV7 = R"sql(
CREATE TABLE login_links (
  secret_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE web_sessions (
  id_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  host TEXT NOT NULL,
  parent_hash TEXT REFERENCES web_sessions(id_hash) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE INDEX web_sessions_user ON web_sessions(user_id);
CREATE INDEX web_sessions_parent ON web_sessions(parent_hash) WHERE parent_hash IS NOT NULL;
CREATE TABLE host_tickets (
  ticket_hash TEXT PRIMARY KEY,
  session_hash TEXT NOT NULL REFERENCES web_sessions(id_hash) ON DELETE CASCADE,
  host TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX host_tickets_session ON host_tickets(session_hash);
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  secret_hash TEXT NOT NULL UNIQUE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  vm_id TEXT REFERENCES vms(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL CHECK (expires_at >= 0),
  last_used_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE INDEX api_tokens_vm ON api_tokens(vm_id) WHERE vm_id IS NOT NULL;
)sql";

// Sharing: VM names become host names, unique
// across users, so every duplicate but the oldest is renamed deterministically to
// <name>-<first 4 chars of its id> (the name cut to keep within 32 characters); web visibility
// and port; share links (only their secrets' hashes); custom domains.
constexpr std::string_view kV8 = R"sql(
UPDATE vms SET name = rtrim(substr(name, 1, 27), '-') || '-' || substr(id, 1, 4)
  WHERE EXISTS (SELECT 1 FROM vms AS older WHERE older.name = vms.name AND
    (older.created_at < vms.created_at OR
     (older.created_at = vms.created_at AND older.rowid < vms.rowid)));
CREATE UNIQUE INDEX vms_name ON vms(name);
ALTER TABLE vms ADD COLUMN public INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1));
ALTER TABLE vms ADD COLUMN web_port INTEGER NOT NULL DEFAULT 0
  CHECK (web_port BETWEEN 0 AND 65535);
CREATE TABLE share_links (
  id TEXT PRIMARY KEY,
  vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
  secret_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);
CREATE INDEX share_links_vm ON share_links(vm_id);
CREATE TABLE custom_domains (
  domain TEXT PRIMARY KEY,
  vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL
);
CREATE INDEX custom_domains_vm ON custom_domains(vm_id);
)sql";

constexpr std::array<std::string_view, 8> kMigrations = {kV1, kV2, kV3, kV4, kV5, kV6, kV7, kV8};

}  // namespace

std::span<const std::string_view> Migrations() { return kMigrations; }

}  // namespace vmctl::sqlite
