-- agentlab store, version 1: seed 000's tables (users, agents, tool_calls, checkpoints) plus the
-- append-only message log and the turns table (turn statistics; its primary key is the per-task
-- idempotency key). Differences from the seed, each for the runtime's interfaces:
--   * ids are TEXT: the gateway chooses them (UUIDs), forks get caller-chosen ids;
--   * opaque payloads (checkpoint snapshots, tool input and result) are TEXT, not JSONB, so the
--     store returns them byte for byte (JSONB would reformat them);
--   * messages are one row each (seed 000's "append-only log" optimisation), not a JSONB array;
--   * locks live in Redis (SET NX PX); the fencing token they grant is checked here (agents.fence);
--   * Row Level Security is left out: the gateway checks ownership (another user's agent is a 404).

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  membership_paused BOOLEAN NOT NULL DEFAULT false,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id),
  name TEXT NOT NULL,
  template_id TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'READY'
    CHECK (state IN ('READY', 'QUEUED', 'PROCESSING', 'ACTIVE', 'HIBERNATED', 'MEMBERSHIP_PAUSED')),
  config JSONB NOT NULL DEFAULT '{}',
  worker_id TEXT NOT NULL DEFAULT '',          -- owner while PROCESSING or ACTIVE (crash recovery)
  fence BIGINT NOT NULL DEFAULT 0,             -- highest fencing token seen on a write
  message_count BIGINT NOT NULL DEFAULT 0,     -- visible history length (fork base + own messages)
  parent_agent_id TEXT REFERENCES agents (id), -- copy-on-write fork: history read through the parent
  fork_base_checkpoint_id TEXT NOT NULL DEFAULT '',
  fork_base_count BIGINT NOT NULL DEFAULT 0,   -- the parent's history length at the fork checkpoint
  fork_depth INTEGER NOT NULL DEFAULT 0,
  created_seq BIGSERIAL NOT NULL,              -- creation order
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_activity TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_agents_user ON agents (user_id, created_seq);
CREATE INDEX idx_agents_state ON agents (state);
CREATE INDEX idx_agents_owner ON agents (worker_id, state) WHERE worker_id <> '';

-- One row per message; seq is the position in the agent's visible history (a fork's own
-- messages continue from its base). Never updated: history is append-only.
CREATE TABLE message_log (
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  seq BIGINT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
  content TEXT NOT NULL,
  task_id TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, seq)
);

-- One row per committed turn: (agent_id, task_id) is the idempotency key, so a task delivered
-- twice stores its effects once; the statistics are seed 004's TurnData.
CREATE TABLE turns (
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  task_id TEXT NOT NULL,
  commit_seq BIGSERIAL NOT NULL,
  first_seq BIGINT NOT NULL,
  last_seq BIGINT NOT NULL,
  fence BIGINT NOT NULL,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL,
  duration_us BIGINT NOT NULL,
  ttft_us BIGINT NOT NULL,
  llm_calls INTEGER NOT NULL,
  model TEXT NOT NULL,
  tool_calls INTEGER NOT NULL,
  committed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, task_id)
);
CREATE INDEX idx_turns_agent ON turns (agent_id, commit_seq);

CREATE TABLE tool_calls (
  agent_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  call_id TEXT NOT NULL,
  name TEXT NOT NULL,
  input TEXT NOT NULL,
  result TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('COMPLETED', 'FAILED', 'SEALED')),
  duration_us BIGINT NOT NULL,
  commit_seq BIGINT NOT NULL,
  PRIMARY KEY (agent_id, task_id, idx),
  FOREIGN KEY (agent_id, task_id) REFERENCES turns (agent_id, task_id) ON DELETE CASCADE
);
CREATE INDEX idx_tool_calls_agent ON tool_calls (agent_id, commit_seq, idx);

CREATE SEQUENCE checkpoint_ids;
CREATE TABLE checkpoints (
  id TEXT PRIMARY KEY,                          -- 'ckpt-' || nextval('checkpoint_ids')
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  parent_checkpoint_id TEXT NOT NULL DEFAULT '', -- no foreign key: retention may drop the parent
  message_count BIGINT NOT NULL,
  snapshot TEXT NOT NULL,
  tags TEXT[] NOT NULL DEFAULT '{}',
  created_seq BIGSERIAL NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_checkpoints_agent ON checkpoints (agent_id, created_seq);
