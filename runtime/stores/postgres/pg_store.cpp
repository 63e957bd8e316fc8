#include "runtime/stores/postgres/pg_store.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <unordered_map>

#include "runtime/stores/postgres/pg_store_migrations.hpp"

namespace lab::runtime {
namespace {

using pg::PgErrc;
using pg::TxMode;

constexpr std::string_view kAgentCols =
    "id, user_id, name, template_id, state, worker_id, fence, message_count, COALESCE(parent_agent_id, ''), "
    "fork_base_checkpoint_id, fork_base_count";
constexpr std::string_view kCheckpointCols = "id, agent_id, parent_checkpoint_id, message_count, snapshot, tags";

std::vector<pg::PreparedStatement> statements() {
  const std::string agent(kAgentCols);
  const std::string ckpt(kCheckpointCols);
  return {
      {"user_ensure", "INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING"},
      {"user_share", "SELECT membership_paused FROM users WHERE id = $1 FOR SHARE"},
      {"user_paused", "SELECT membership_paused FROM users WHERE id = $1"},
      {"user_set_paused",
       "INSERT INTO users (id, membership_paused) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE "
       "SET membership_paused = EXCLUDED.membership_paused, updated_at = now()"},
      {"agent_insert",
       "INSERT INTO agents (id, user_id, name, template_id, state) VALUES ($1, $2, $3, $4, $5) "
       "ON CONFLICT (id) DO NOTHING RETURNING " + agent},
      {"agent_get", "SELECT " + agent + " FROM agents WHERE id = $1"},
      {"agents_of_user", "SELECT " + agent + " FROM agents WHERE user_id = $1 ORDER BY created_seq LIMIT $2"},
      {"agents_owned", "SELECT id FROM agents WHERE worker_id = $2 AND state = $1 LIMIT $3"},
      {"agent_lock_transition",
       "SELECT a.state, a.worker_id, a.fence, u.membership_paused FROM agents a JOIN users u ON u.id = a.user_id "
       "WHERE a.id = $1 FOR UPDATE OF a"},
      {"agent_set_state",
       "UPDATE agents SET state = $2, worker_id = $3, fence = GREATEST(fence, $4), updated_at = now(), "
       "last_activity = now() WHERE id = $1 RETURNING " + agent},
      {"agents_pause",
       "UPDATE agents SET state = 'MEMBERSHIP_PAUSED', worker_id = '', updated_at = now() "
       "WHERE user_id = $1 AND state <> 'MEMBERSHIP_PAUSED'"},
      {"agents_unpause",
       "UPDATE agents SET state = 'HIBERNATED', updated_at = now() WHERE user_id = $1 AND state = 'MEMBERSHIP_PAUSED'"},
      {"count_states", "SELECT state, count(*) FROM agents GROUP BY state"},
      {"agent_lock_head",
       "SELECT message_count, fork_base_checkpoint_id, user_id, name, template_id, fork_depth FROM agents "
       "WHERE id = $1 FOR UPDATE"},
      {"checkpoint_last", "SELECT id FROM checkpoints WHERE agent_id = $1 ORDER BY created_seq DESC LIMIT 1"},
      {"checkpoint_insert",
       "INSERT INTO checkpoints (id, agent_id, parent_checkpoint_id, message_count, snapshot, tags) "
       "VALUES ('ckpt-' || nextval('checkpoint_ids'), $1, $2, $3, $4, $5::text[]) RETURNING id"},
      {"checkpoint_trim",
       "DELETE FROM checkpoints WHERE agent_id = $1 AND created_seq <= (SELECT created_seq FROM checkpoints "
       "WHERE agent_id = $1 ORDER BY created_seq DESC OFFSET $2 LIMIT 1)"},
      {"checkpoint_get", "SELECT " + ckpt + " FROM checkpoints WHERE id = $1"},
      {"checkpoint_of_agent", "SELECT " + ckpt + " FROM checkpoints WHERE id = $1 AND agent_id = $2"},
      {"checkpoints_of",
       "SELECT c.id, c.agent_id, c.parent_checkpoint_id, c.message_count, c.snapshot, c.tags FROM agents a "
       "LEFT JOIN checkpoints c ON c.agent_id = a.id WHERE a.id = $1 ORDER BY c.created_seq"},
      {"agents_exist_any", "SELECT 1 FROM agents WHERE id = ANY($1::text[]) LIMIT 1"},
      {"forks_insert",
       "INSERT INTO agents (id, user_id, name, template_id, state, message_count, parent_agent_id, "
       "fork_base_checkpoint_id, fork_base_count, fork_depth) "
       "SELECT f.id, $2, $3, $4, $5, $6, $7, $8, $6, $9 FROM unnest($1::text[]) AS f(id) "
       "ON CONFLICT (id) DO NOTHING RETURNING " + agent},
      // A turn's commit in one round trip: migrations/002_commit_turn_function.sql.
      {"commit_turn",
       "SELECT status, first_seq, last_seq FROM agentlab_commit_turn($1, $2, $3, $4::text[], $5::text[], $6, $7, $8, "
       "$9, $10, $11, $12, $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::bigint[])"},
      // A group commit in one statement and one round trip: a row per turn (each array argument
      // holds one element per turn; per-turn arrays travel as array literals), the function
      // called for each in order.
      {"commit_turns",
       "SELECT x.i, r.status, r.first_seq, r.last_seq FROM unnest($1::text[], $2::text[], $3::bigint[], "
       "$4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::float8[], $9::bigint[], $10::bigint[], $11::int[], "
       "$12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[]) "
       "WITH ORDINALITY AS x(agent, task, fence, roles, contents, itok, otok, cost, dur, ttft, calls, model, "
       "call_ids, names, inputs, results, states, durations, i) "
       "CROSS JOIN LATERAL agentlab_commit_turn(x.agent, x.task, x.fence, x.roles::text[], x.contents::text[], "
       "x.itok, x.otok, x.cost, x.dur, x.ttft, x.calls, x.model, x.call_ids::text[], x.names::text[], "
       "x.inputs::text[], x.results::text[], x.states::text[], x.durations::bigint[]) r ORDER BY x.i"},
      // The visible history: the agent's own messages, then each fork ancestor's up to the fork
      // point (hi of a parent level = lo of its child), newest $2, in one snapshot.
      {"history",
       "WITH RECURSIVE chain(id, parent, lo, hi, depth) AS ("
       "  SELECT id, parent_agent_id, fork_base_count, message_count, 0 FROM agents WHERE id = $1"
       "  UNION ALL"
       "  SELECT a.id, a.parent_agent_id, a.fork_base_count, c.lo, c.depth + 1"
       "  FROM chain c JOIN agents a ON a.id = c.parent WHERE c.depth < 1000"
       ") "
       "SELECT root.message_count, m.seq, m.role, m.content FROM agents root "
       "LEFT JOIN LATERAL ("
       "  SELECT l.seq, l.role, l.content FROM chain c"
       "  JOIN message_log l ON l.agent_id = c.id AND l.seq > c.lo AND l.seq <= c.hi"
       "  ORDER BY l.seq DESC LIMIT $2"
       ") m ON true WHERE root.id = $1 ORDER BY m.seq"},
      {"turn_exists",
       "SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1), "
       "EXISTS (SELECT 1 FROM turns WHERE agent_id = $1 AND task_id = $2)"},
      {"totals_agent",
       "SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1), count(*), COALESCE(sum(input_tokens), 0), "
       "COALESCE(sum(output_tokens), 0), COALESCE(sum(tool_calls), 0), COALESCE(sum(cost_usd), 0), "
       "COALESCE(sum(duration_us), 0) FROM turns WHERE agent_id = $1"},
      {"totals_all",
       "SELECT true, count(*), COALESCE(sum(input_tokens), 0), COALESCE(sum(output_tokens), 0), "
       "COALESCE(sum(tool_calls), 0), COALESCE(sum(cost_usd), 0), COALESCE(sum(duration_us), 0) FROM turns"},
      // The ledger's audit: per asked task id, its turns and its message rows (hash joins on the
      // unnested id list; no index on task_id is needed for a once-per-run check).
      {"audit_turns",
       "SELECT t.task_id, count(*), COALESCE(sum(t.last_seq - t.first_seq + 1), 0) FROM turns t "
       "JOIN unnest($1::text[]) AS q(id) ON t.task_id = q.id GROUP BY t.task_id"},
      {"audit_messages",
       "SELECT m.task_id, count(*) FROM message_log m JOIN unnest($1::text[]) AS q(id) ON m.task_id = q.id "
       "GROUP BY m.task_id"},
      {"recent_turns",
       "SELECT t.task_id, t.input_tokens, t.output_tokens, t.cost_usd, t.duration_us, t.ttft_us, t.llm_calls, "
       "t.model FROM agents a LEFT JOIN LATERAL (SELECT * FROM turns WHERE agent_id = a.id "
       "ORDER BY commit_seq DESC LIMIT $2) t ON true WHERE a.id = $1 ORDER BY t.commit_seq"},
      {"recent_tools",
       "SELECT c.call_id, c.name, c.input, c.result, c.state, c.duration_us FROM agents a "
       "LEFT JOIN LATERAL (SELECT * FROM tool_calls WHERE agent_id = a.id "
       "ORDER BY commit_seq DESC, idx DESC LIMIT $2) c ON true WHERE a.id = $1 ORDER BY c.commit_seq, c.idx"},
  };
}

// A text[] literal: every element quoted, '"' and '\' escaped.
std::string text_array(const std::vector<std::string_view>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (const char c : items[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

// A float8[] literal; each value in its shortest exact form.
std::string double_array(const std::vector<double>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), items[i]);
    out.append(buf, ec == std::errc() ? end : buf);
  }
  out.push_back('}');
  return out;
}

std::string bigint_array(const std::vector<long long>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += std::to_string(items[i]);
  }
  out.push_back('}');
  return out;
}

std::vector<std::string> parse_text_array(const pqxx::field& f) {
  std::vector<std::string> out;
  if (f.is_null()) return out;
  auto parser = f.as_array();
  for (auto step = parser.get_next(); step.first != pqxx::array_parser::done; step = parser.get_next()) {
    if (step.first == pqxx::array_parser::string_value) out.push_back(std::move(step.second));
  }
  return out;
}

long long as_limit(std::size_t n) {
  return static_cast<long long>(std::min<std::size_t>(n, static_cast<std::size_t>(std::numeric_limits<long long>::max())));
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

std::optional<Role> parse_role(std::string_view s) {
  if (s == "system") return Role::kSystem;
  if (s == "user") return Role::kUser;
  if (s == "assistant") return Role::kAssistant;
  if (s == "tool") return Role::kTool;
  return std::nullopt;
}

std::optional<ToolCallState> parse_tool_state(std::string_view s) {
  if (s == "COMPLETED") return ToolCallState::kCompleted;
  if (s == "FAILED") return ToolCallState::kFailed;
  if (s == "SEALED") return ToolCallState::kSealed;
  return std::nullopt;
}

bool owns_worker(AgentState s) { return s == AgentState::kProcessing || s == AgentState::kActive; }

// Reads kAgentCols starting at column `at`; false on a value the schema's CHECKs forbid.
bool read_agent(const pqxx::row& row, AgentRecord& out, pqxx::row::size_type at = 0) {
  out.id = row[at].as<std::string>();
  out.user_id = row[at + 1].as<std::string>();
  out.name = row[at + 2].as<std::string>();
  out.template_id = row[at + 3].as<std::string>();
  const auto state = parse_agent_state(row[at + 4].c_str());
  if (!state) return false;
  out.state = *state;
  out.worker_id = row[at + 5].as<std::string>();
  out.fence = row[at + 6].as<std::uint64_t>();
  out.message_count = row[at + 7].as<std::uint64_t>();
  out.fork.parent_agent_id = row[at + 8].as<std::string>();
  out.fork.checkpoint_id = row[at + 9].as<std::string>();
  out.fork.message_count = row[at + 10].as<std::uint64_t>();
  return true;
}

CheckpointRecord read_checkpoint(const pqxx::row& row) {
  CheckpointRecord c;
  c.id = row[0].as<std::string>();
  c.agent_id = row[1].as<std::string>();
  c.parent_checkpoint_id = row[2].as<std::string>();
  c.message_count = row[3].as<std::uint64_t>();
  c.snapshot = row[4].as<std::string>();
  c.tags = parse_text_array(row[5]);
  return c;
}

StatsTotals read_totals(const pqxx::row& row) {
  StatsTotals t;
  t.turns = row[1].as<std::uint64_t>();
  t.input_tokens = row[2].as<std::uint64_t>();
  t.output_tokens = row[3].as<std::uint64_t>();
  t.tool_calls = row[4].as<std::uint64_t>();
  t.cost_usd = row[5].as<double>();
  t.duration = Micros(row[6].as<long long>());
  return t;
}

// Database errors as the interfaces' codes; the interfaces' own codes pass through.
std::error_code to_store_error(std::error_code ec) { return pg::to_runtime(ec); }

}  // namespace

// ---- open ---------------------------------------------------------------------------------

Result<std::unique_ptr<PgStore>> PgStore::open(PgStoreConfig config, const Clock& clock) {
  if (!config.db.schema.empty() && !pg::is_plain_identifier(config.db.schema)) return Errc::kInvalidArgument;
  auto migrated = pg::apply_migrations(config.db, migrations());
  if (!migrated.ok()) return to_store_error(migrated.error());
  std::string sync;
  {
    pg::PgPool probe(config.db, {}, clock);
    auto r = probe.transact<std::string>(TxMode::kAutocommit, [](pqxx::transaction_base& tx) -> Result<std::string> {
      return tx.exec("SHOW synchronous_commit")[0][0].as<std::string>();
    });
    if (!r.ok()) return to_store_error(r.error());
    sync = *r;
  }
  if (sync == "off") return Errc::kInvalidArgument;  // a commit could be lost after it was acknowledged
  return std::unique_ptr<PgStore>(new PgStore(std::move(config), clock, std::move(sync)));
}

std::span<const pg::Migration> PgStore::migrations() { return store_migrations(); }

PgStore::PgStore(PgStoreConfig config, const Clock& clock, std::string synchronous_commit)
    : config_(std::move(config)),
      pool_(std::make_unique<pg::PgPool>(config_.db, statements(), clock)),
      synchronous_commit_(std::move(synchronous_commit)) {}

PgStore::~PgStore() = default;

PgStoreStats PgStore::stats() const {
  std::size_t waiting = 0;
  {
    std::lock_guard lk(batch_mu_);
    waiting = pending_.size();
  }
  return PgStoreStats{commits_.load(), duplicate_commits_.load(), stale_fence_.load(), batches_.load(),
                      batch_fallbacks_.load(), waiting, pool_->stats()};
}

// ---- AgentStore ---------------------------------------------------------------------------

Result<AgentRecord> PgStore::create_agent(const NewAgent& agent) {
  if (agent.id.empty() || agent.user_id.empty()) return Errc::kInvalidArgument;
  if (has_nul(agent.id) || has_nul(agent.user_id) || has_nul(agent.name) || has_nul(agent.template_id)) {
    return Errc::kInvalidArgument;
  }
  auto r = pool_->transact<AgentRecord>(TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> Result<AgentRecord> {
    tx.exec_prepared("user_ensure", agent.user_id);
    // FOR SHARE: a concurrent pause commits before or after us, never half-way (it updates the
    // user row first, then the user's agents).
    const bool paused = tx.exec_prepared("user_share", agent.user_id)[0][0].as<bool>();
    const AgentState state = paused ? AgentState::kMembershipPaused : AgentState::kReady;
    const auto row = tx.exec_prepared("agent_insert", agent.id, agent.user_id, agent.name, agent.template_id,
                                      std::string(to_string(state)));
    if (row.empty()) return Errc::kAlreadyExists;
    AgentRecord rec;
    if (!read_agent(row[0], rec)) return Errc::kBackendError;
    return rec;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<AgentRecord> PgStore::get_agent(std::string_view agent_id) {
  auto r = pool_->transact<AgentRecord>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<AgentRecord> {
    const auto rows = tx.exec_prepared("agent_get", std::string(agent_id));
    if (rows.empty()) return Errc::kNotFound;
    AgentRecord rec;
    if (!read_agent(rows[0], rec)) return Errc::kBackendError;
    return rec;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<std::vector<AgentRecord>> PgStore::list_agents(std::string_view user_id, std::size_t limit) {
  using Out = std::vector<AgentRecord>;
  auto r = pool_->transact<Out>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<Out> {
    Out out;
    for (const auto& row : tx.exec_prepared("agents_of_user", std::string(user_id), as_limit(limit))) {
      AgentRecord rec;
      if (!read_agent(row, rec)) return Errc::kBackendError;
      out.push_back(std::move(rec));
    }
    return out;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<std::vector<std::string>> PgStore::list_owned(AgentState state, std::string_view worker_id,
                                                     std::size_t limit) {
  using Out = std::vector<std::string>;
  auto r = pool_->transact<Out>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<Out> {
    Out out;
    for (const auto& row : tx.exec_prepared("agents_owned", std::string(to_string(state)), std::string(worker_id),
                                            as_limit(limit))) {
      out.push_back(row[0].as<std::string>());
    }
    return out;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<AgentRecord> PgStore::transition(std::string_view agent_id, const Transition& t) {
  if (has_nul(t.owner)) return Errc::kInvalidArgument;
  auto r = pool_->transact<AgentRecord>(TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> Result<AgentRecord> {
    const auto rows = tx.exec_prepared("agent_lock_transition", std::string(agent_id));
    if (rows.empty()) return Errc::kNotFound;
    const auto current = parse_agent_state(rows[0][0].c_str());
    if (!current) return Errc::kBackendError;
    const std::string worker = rows[0][1].as<std::string>();
    const auto fence = rows[0][2].as<std::uint64_t>();
    const bool user_paused = rows[0][3].as<bool>();
    // The same checks, in the same order, as the in-memory store (see Transition).
    if (t.expected_state && *t.expected_state != *current) return Errc::kConflict;
    if (t.expected_owner && *t.expected_owner != worker) return Errc::kConflict;
    if (t.fence != 0 && t.fence < fence) {
      ++stale_fence_;
      return Errc::kStaleFence;
    }
    if (*current == AgentState::kMembershipPaused && t.to != AgentState::kMembershipPaused &&
        (t.to != AgentState::kHibernated || user_paused)) {
      return Errc::kMembershipPaused;
    }
    if (!is_allowed_transition(*current, t.to)) return Errc::kInvalidTransition;
    const std::string owner = owns_worker(t.to) ? std::string(t.owner) : std::string();
    const auto updated = tx.exec_prepared("agent_set_state", std::string(agent_id), std::string(to_string(t.to)),
                                          owner, static_cast<long long>(t.fence));
    AgentRecord rec;
    if (updated.empty() || !read_agent(updated[0], rec)) return Errc::kBackendError;
    return rec;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<std::size_t> PgStore::set_membership_paused(std::string_view user_id, bool paused) {
  if (user_id.empty() || has_nul(user_id)) return Errc::kInvalidArgument;
  auto r = pool_->transact<std::size_t>(TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> Result<std::size_t> {
    const std::string user(user_id);
    tx.exec_prepared("user_set_paused", user, paused);  // the user row first (see create_agent)
    const auto changed = tx.exec_prepared(paused ? "agents_pause" : "agents_unpause", user);
    return static_cast<std::size_t>(changed.affected_rows());
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<bool> PgStore::membership_paused(std::string_view user_id) {
  auto r = pool_->transact<bool>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<bool> {
    const auto rows = tx.exec_prepared("user_paused", std::string(user_id));
    return !rows.empty() && rows[0][0].as<bool>();
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<StateCounts> PgStore::count_by_state() {
  auto r = pool_->transact<StateCounts>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<StateCounts> {
    StateCounts counts;
    for (const auto& row : tx.exec_prepared("count_states")) {
      const auto state = parse_agent_state(row[0].c_str());
      if (!state) return Errc::kBackendError;
      counts.by_state[static_cast<std::size_t>(*state)] = row[1].as<std::uint64_t>();
    }
    return counts;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

namespace {

// A checkpoint of the locked agent at its head (the caller holds the agent row FOR UPDATE).
CheckpointRecord insert_checkpoint(pqxx::transaction_base& tx, const std::string& agent_id,
                                   std::uint64_t message_count, const std::string& fork_base_checkpoint,
                                   std::string snapshot, std::vector<std::string> tags, std::size_t keep) {
  CheckpointRecord cp;
  cp.agent_id = agent_id;
  const auto last = tx.exec_prepared("checkpoint_last", agent_id);
  cp.parent_checkpoint_id = last.empty() ? fork_base_checkpoint : last[0][0].as<std::string>();
  cp.message_count = message_count;
  cp.snapshot = std::move(snapshot);
  cp.tags = std::move(tags);
  const std::vector<std::string_view> tag_views(cp.tags.begin(), cp.tags.end());
  cp.id = tx.exec_prepared("checkpoint_insert", agent_id, cp.parent_checkpoint_id,
                           static_cast<long long>(message_count), cp.snapshot, text_array(tag_views))[0][0]
              .as<std::string>();
  tx.exec_prepared("checkpoint_trim", agent_id, as_limit(std::max<std::size_t>(1, keep)));
  return cp;
}

}  // namespace

Result<CheckpointRecord> PgStore::create_checkpoint(std::string_view agent_id, std::string snapshot,
                                                    std::vector<std::string> tags) {
  if (has_nul(snapshot) || std::any_of(tags.begin(), tags.end(), [](const auto& t) { return has_nul(t); })) {
    return Errc::kInvalidArgument;
  }
  auto r = pool_->transact<CheckpointRecord>(
      TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> Result<CheckpointRecord> {
        const std::string id(agent_id);
        const auto head = tx.exec_prepared("agent_lock_head", id);
        if (head.empty()) return Errc::kNotFound;
        return insert_checkpoint(tx, id, head[0][0].as<std::uint64_t>(), head[0][1].as<std::string>(), snapshot,
                                 tags, config_.max_checkpoints_per_agent);
      });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<CheckpointRecord> PgStore::get_checkpoint(std::string_view checkpoint_id) {
  auto r = pool_->transact<CheckpointRecord>(
      TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<CheckpointRecord> {
        const auto rows = tx.exec_prepared("checkpoint_get", std::string(checkpoint_id));
        if (rows.empty()) return Errc::kNotFound;
        return read_checkpoint(rows[0]);
      });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<std::vector<CheckpointRecord>> PgStore::list_checkpoints(std::string_view agent_id) {
  using Out = std::vector<CheckpointRecord>;
  auto r = pool_->transact<Out>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<Out> {
    const auto rows = tx.exec_prepared("checkpoints_of", std::string(agent_id));
    if (rows.empty()) return Errc::kNotFound;
    Out out;
    for (const auto& row : rows) {
      if (!row[0].is_null()) out.push_back(read_checkpoint(row));
    }
    return out;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<ForkResult> PgStore::fork(const ForkRequest& request) {
  if (request.fork_ids.empty()) return Errc::kInvalidArgument;
  for (std::size_t i = 0; i < request.fork_ids.size(); ++i) {
    const std::string& id = request.fork_ids[i];
    if (id.empty() || id == request.parent_id || has_nul(id)) return Errc::kInvalidArgument;
    for (std::size_t j = 0; j < i; ++j) {
      if (id == request.fork_ids[j]) return Errc::kInvalidArgument;
    }
  }
  auto r = pool_->transact<ForkResult>(TxMode::kReadWrite, [&](pqxx::transaction_base& tx) -> Result<ForkResult> {
    const auto parent = tx.exec_prepared("agent_lock_head", request.parent_id);
    if (parent.empty()) return Errc::kNotFound;
    const auto head = parent[0][0].as<std::uint64_t>();
    const auto fork_base = parent[0][1].as<std::string>();
    const auto user = parent[0][2].as<std::string>();
    const auto name = parent[0][3].as<std::string>();
    const auto template_id = parent[0][4].as<std::string>();
    const auto depth = parent[0][5].as<std::size_t>();
    std::optional<CheckpointRecord> existing;
    if (!request.checkpoint_id.empty()) {
      const auto rows = tx.exec_prepared("checkpoint_of_agent", request.checkpoint_id, request.parent_id);
      if (rows.empty()) return Errc::kNotFound;
      existing = read_checkpoint(rows[0]);
    }
    const std::vector<std::string_view> ids(request.fork_ids.begin(), request.fork_ids.end());
    const std::string id_array = text_array(ids);
    if (!tx.exec_prepared("agents_exist_any", id_array).empty()) return Errc::kAlreadyExists;
    if (depth + 1 > config_.max_fork_depth) return Errc::kLimitExceeded;
    // Validated: from here on only a concurrent insert of a fork id can fail (rolled back).
    const bool paused = tx.exec_prepared("user_share", user)[0][0].as<bool>();
    ForkResult out;
    out.checkpoint = existing ? std::move(*existing)
                              : insert_checkpoint(tx, request.parent_id, head, fork_base, "{}", {"fork"},
                                                  config_.max_checkpoints_per_agent);
    const AgentState state = paused ? AgentState::kMembershipPaused : AgentState::kReady;
    const auto rows = tx.exec_prepared("forks_insert", id_array, user, name, template_id,
                                       std::string(to_string(state)), static_cast<long long>(out.checkpoint.message_count),
                                       request.parent_id, out.checkpoint.id, static_cast<long long>(depth + 1));
    if (rows.size() != request.fork_ids.size()) return Errc::kAlreadyExists;
    std::unordered_map<std::string, AgentRecord> made;
    for (const auto& row : rows) {
      AgentRecord rec;
      if (!read_agent(row, rec)) return Errc::kBackendError;
      made.emplace(rec.id, std::move(rec));
    }
    for (const auto& id : request.fork_ids) out.forks.push_back(std::move(made.at(id)));
    return out;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

// ---- MessageStore -------------------------------------------------------------------------

// A turn's parameters for agentlab_commit_turn, encoded once.
struct PgStore::EncodedTurn {
  const TurnWrite* turn = nullptr;
  std::string roles, contents, call_ids, names, inputs, results, states, durations;
};

struct PgStore::PendingCommit {
  EncodedTurn encoded;
  std::optional<Result<CommitResult>> result;
};

namespace {

Result<CommitResult> exec_commit(pqxx::transaction_base& tx, const PgStore::EncodedTurn& e) {
  const TurnWrite& t = *e.turn;
  const auto row = tx.exec_prepared(
      "commit_turn", t.agent_id, t.task_id, static_cast<long long>(t.fence), e.roles, e.contents,
      static_cast<long long>(t.stats.input_tokens), static_cast<long long>(t.stats.output_tokens), t.stats.cost_usd,
      static_cast<long long>(t.stats.duration.count()), static_cast<long long>(t.stats.ttft.count()),
      static_cast<int>(t.stats.llm_calls), t.stats.model, e.call_ids, e.names, e.inputs, e.results, e.states,
      e.durations)[0];
  switch (row[0].as<int>()) {
    case 0: return CommitResult{true, row[1].as<std::uint64_t>(), row[2].as<std::uint64_t>()};
    case 1: return CommitResult{false, row[1].as<std::uint64_t>(), row[2].as<std::uint64_t>()};
    case 2: return Errc::kStaleFence;
    case 3: return Errc::kNotFound;
    default: return Errc::kBackendError;
  }
}

}  // namespace

Result<PgStore::EncodedTurn> PgStore::encode(const TurnWrite& turn) {
  if (turn.task_id.empty() || turn.fence == 0) return Errc::kInvalidArgument;
  if (has_nul(turn.agent_id) || has_nul(turn.task_id) || has_nul(turn.stats.model)) return Errc::kInvalidArgument;
  std::vector<std::string_view> roles, contents, call_ids, names, inputs, results, states;
  std::vector<long long> durations;
  for (const auto& m : turn.messages) {
    if (has_nul(m.content)) return Errc::kInvalidArgument;
    roles.push_back(to_string(m.role));
    contents.push_back(m.content);
  }
  for (const auto& c : turn.tool_calls) {
    if (has_nul(c.call_id) || has_nul(c.name) || has_nul(c.input) || has_nul(c.result)) return Errc::kInvalidArgument;
    call_ids.push_back(c.call_id);
    names.push_back(c.name);
    inputs.push_back(c.input);
    results.push_back(c.result);
    states.push_back(to_string(c.state));
    durations.push_back(c.duration.count());
  }
  return EncodedTurn{&turn,         text_array(roles),  text_array(contents), text_array(call_ids),
                     text_array(names), text_array(inputs), text_array(results),  text_array(states),
                     bigint_array(durations)};
}

Result<CommitResult> PgStore::commit_one(const EncodedTurn& e) {
  // One statement in its own implicit transaction: if the connection breaks while it runs, the
  // pool runs it again, which is safe here — the idempotency key turns a second run of a turn
  // that did commit into applied = false.
  return pool_->transact<CommitResult>(TxMode::kAutocommit,
                                       [&](pqxx::transaction_base& tx) { return exec_commit(tx, e); });
}

void PgStore::commit_batch(std::vector<PendingCommit*>& batch) {
  if (batch.size() == 1) {
    batch[0]->result = commit_one(batch[0]->encoded);
    return;
  }
  // Agent order: every batch (of any process) locks agent rows in the same order, so two batches
  // cannot deadlock on each other.
  std::stable_sort(batch.begin(), batch.end(), [](const PendingCommit* a, const PendingCommit* b) {
    return a->encoded.turn->agent_id < b->encoded.turn->agent_id;
  });
  std::vector<std::string_view> agents, tasks, roles, contents, models, call_ids, names, inputs, results, states,
      durations;
  std::vector<long long> fences, itok, otok, dur, ttft, calls;
  std::vector<double> cost;
  for (const PendingCommit* p : batch) {
    const EncodedTurn& e = p->encoded;
    const TurnWrite& t = *e.turn;
    agents.push_back(t.agent_id);
    tasks.push_back(t.task_id);
    fences.push_back(static_cast<long long>(t.fence));
    roles.push_back(e.roles);
    contents.push_back(e.contents);
    itok.push_back(t.stats.input_tokens);
    otok.push_back(t.stats.output_tokens);
    cost.push_back(t.stats.cost_usd);
    dur.push_back(t.stats.duration.count());
    ttft.push_back(t.stats.ttft.count());
    calls.push_back(t.stats.llm_calls);
    models.push_back(t.stats.model);
    call_ids.push_back(e.call_ids);
    names.push_back(e.names);
    inputs.push_back(e.inputs);
    results.push_back(e.results);
    states.push_back(e.states);
    durations.push_back(e.durations);
  }
  const std::string a_agents = text_array(agents), a_tasks = text_array(tasks), a_fences = bigint_array(fences),
                    a_roles = text_array(roles), a_contents = text_array(contents), a_itok = bigint_array(itok),
                    a_otok = bigint_array(otok), a_cost = double_array(cost), a_dur = bigint_array(dur),
                    a_ttft = bigint_array(ttft), a_calls = bigint_array(calls), a_models = text_array(models),
                    a_call_ids = text_array(call_ids), a_names = text_array(names), a_inputs = text_array(inputs),
                    a_results = text_array(results), a_states = text_array(states),
                    a_durations = text_array(durations);
  std::vector<Result<CommitResult>> answers;
  // One statement, its own implicit transaction: safe to run again after a broken connection
  // (each turn is idempotent).
  const std::error_code ec = pool_->run(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) {
    answers.clear();
    const auto rows = tx.exec_prepared("commit_turns", a_agents, a_tasks, a_fences, a_roles, a_contents, a_itok,
                                       a_otok, a_cost, a_dur, a_ttft, a_calls, a_models, a_call_ids, a_names,
                                       a_inputs, a_results, a_states, a_durations);
    for (const auto& row : rows) {
      switch (row[1].as<int>()) {
        case 0: answers.emplace_back(CommitResult{true, row[2].as<std::uint64_t>(), row[3].as<std::uint64_t>()}); break;
        case 1: answers.emplace_back(CommitResult{false, row[2].as<std::uint64_t>(), row[3].as<std::uint64_t>()}); break;
        case 2: answers.emplace_back(Errc::kStaleFence); break;
        case 3: answers.emplace_back(Errc::kNotFound); break;
        default: answers.emplace_back(Errc::kBackendError); break;
      }
    }
    return answers.size() == batch.size() ? std::error_code{} : make_error_code(Errc::kBackendError);
  });
  if (!ec) {
    ++batches_;
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(answers[i]);
    return;
  }
  // The batch failed as a whole (one turn PostgreSQL refused, or a COMMIT in doubt): commit the
  // turns one by one, so each gets its own answer. Idempotent: a turn whose batch did commit
  // answers applied = false.
  ++batch_fallbacks_;
  for (PendingCommit* p : batch) p->result = commit_one(p->encoded);
}

Result<CommitResult> PgStore::commit_turn(const TurnWrite& turn) {
  auto encoded = encode(turn);
  if (!encoded.ok()) return encoded.error();
  Result<CommitResult> r = Errc::kBackendError;
  if (config_.max_commit_batch <= 1) {
    r = commit_one(*encoded);
  } else {
    // Group commit: the first waiting caller leads — takes what is pending (its own turn
    // included), commits it in one transaction (one WAL flush for all), and hands the results
    // out; turns arriving meanwhile form the next batch. Each caller returns only after the
    // transaction holding its turn committed, so the durability guarantee is unchanged.
    PendingCommit me{std::move(*encoded), std::nullopt};
    std::unique_lock lk(batch_mu_);
    pending_.push_back(&me);
    while (!me.result) {
      if (batch_leader_) {
        batch_cv_.wait(lk);
        continue;
      }
      batch_leader_ = true;
      std::vector<PendingCommit*> batch;
      while (!pending_.empty() && batch.size() < config_.max_commit_batch) {
        batch.push_back(pending_.front());
        pending_.pop_front();
      }
      lk.unlock();
      commit_batch(batch);
      lk.lock();
      batch_leader_ = false;
      batch_cv_.notify_all();
    }
    r = std::move(*me.result);
  }
  if (!r.ok()) {
    if (r.error() == Errc::kStaleFence) ++stale_fence_;
    return to_store_error(r.error());
  }
  if (r->applied) {
    ++commits_;
  } else {
    ++duplicate_commits_;
  }
  return r;
}

Result<History> PgStore::load_history(std::string_view agent_id, std::size_t max_messages) {
  auto r = pool_->transact<History>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<History> {
    const auto rows = tx.exec_prepared("history", std::string(agent_id), as_limit(max_messages));
    if (rows.empty()) return Errc::kNotFound;
    History h;
    h.total = rows[0][0].as<std::uint64_t>();
    for (const auto& row : rows) {
      if (row[1].is_null()) continue;  // the agent has no message (one row with NULLs)
      const auto role = parse_role(row[2].c_str());
      if (!role) return Errc::kBackendError;
      h.messages.push_back(Message{row[1].as<std::uint64_t>(), *role, row[3].as<std::string>()});
    }
    return h;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<bool> PgStore::turn_committed(std::string_view agent_id, std::string_view task_id) {
  auto r = pool_->transact<bool>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<bool> {
    const auto row = tx.exec_prepared("turn_exists", std::string(agent_id), std::string(task_id))[0];
    if (!row[0].as<bool>()) return Errc::kNotFound;
    return row[1].as<bool>();
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

// ---- TurnStatsStore / ToolCallStore -------------------------------------------------------

Result<StatsTotals> PgStore::turn_totals(std::string_view agent_id) {
  auto r = pool_->transact<StatsTotals>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<StatsTotals> {
    const auto row = tx.exec_prepared("totals_agent", std::string(agent_id))[0];
    if (!row[0].as<bool>()) return Errc::kNotFound;
    return read_totals(row);
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<StatsTotals> PgStore::system_turn_totals() {
  auto r = pool_->transact<StatsTotals>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<StatsTotals> {
    return read_totals(tx.exec_prepared("totals_all")[0]);
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<TaskAudit> PgStore::audit_tasks(std::span<const std::string> task_ids) {
  if (task_ids.size() > kMaxAuditTasks) return Errc::kInvalidArgument;
  TaskAudit audit;
  audit.tasks.resize(task_ids.size());
  std::unordered_map<std::string_view, std::size_t> index;
  index.reserve(task_ids.size());
  for (std::size_t i = 0; i < task_ids.size(); ++i) {
    audit.tasks[i].task_id = task_ids[i];
    index.emplace(task_ids[i], i);
  }
  constexpr std::size_t kChunk = 10'000;  // ids per round trip
  for (std::size_t from = 0; from < task_ids.size(); from += kChunk) {
    const auto chunk = task_ids.subspan(from, std::min(kChunk, task_ids.size() - from));
    const std::vector<std::string_view> views(chunk.begin(), chunk.end());
    const std::string ids = text_array(views);
    auto r = pool_->run(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> std::error_code {
      for (const auto& row : tx.exec_prepared("audit_turns", ids)) {
        const auto it = index.find(row[0].as<std::string>());
        if (it == index.end()) continue;
        audit.tasks[it->second].turns = row[1].as<std::uint32_t>();
        audit.tasks[it->second].expected_messages = row[2].as<std::uint64_t>();
      }
      for (const auto& row : tx.exec_prepared("audit_messages", ids)) {
        const auto it = index.find(row[0].as<std::string>());
        if (it != index.end()) audit.tasks[it->second].messages = row[1].as<std::uint64_t>();
      }
      return {};
    });
    if (r) return to_store_error(r);
  }
  return audit;
}

Result<std::vector<TurnStatsRecord>> PgStore::recent_turns(std::string_view agent_id, std::size_t limit) {
  using Out = std::vector<TurnStatsRecord>;
  auto r = pool_->transact<Out>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<Out> {
    const auto rows = tx.exec_prepared("recent_turns", std::string(agent_id), as_limit(limit));
    if (rows.empty()) return Errc::kNotFound;
    Out out;
    for (const auto& row : rows) {
      if (row[0].is_null()) continue;
      TurnStatsRecord t;
      t.task_id = row[0].as<std::string>();
      t.stats.input_tokens = row[1].as<std::uint32_t>();
      t.stats.output_tokens = row[2].as<std::uint32_t>();
      t.stats.cost_usd = row[3].as<double>();
      t.stats.duration = Micros(row[4].as<long long>());
      t.stats.ttft = Micros(row[5].as<long long>());
      t.stats.llm_calls = row[6].as<std::uint32_t>();
      t.stats.model = row[7].as<std::string>();
      out.push_back(std::move(t));
    }
    return out;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

Result<std::vector<ToolCallRecord>> PgStore::recent_tool_calls(std::string_view agent_id, std::size_t limit) {
  using Out = std::vector<ToolCallRecord>;
  auto r = pool_->transact<Out>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<Out> {
    const auto rows = tx.exec_prepared("recent_tools", std::string(agent_id), as_limit(limit));
    if (rows.empty()) return Errc::kNotFound;
    Out out;
    for (const auto& row : rows) {
      if (row[0].is_null()) continue;
      ToolCallRecord c;
      c.call_id = row[0].as<std::string>();
      c.name = row[1].as<std::string>();
      c.input = row[2].as<std::string>();
      c.result = row[3].as<std::string>();
      const auto state = parse_tool_state(row[4].c_str());
      if (!state) return Errc::kBackendError;
      c.state = *state;
      c.duration = Micros(row[5].as<long long>());
      out.push_back(std::move(c));
    }
    return out;
  });
  if (!r.ok()) return to_store_error(r.error());
  return r;
}

}  // namespace lab::runtime
