-- agentlab store, version 2: a turn's commit as one function, so a worker commits in one round
-- trip (one implicit transaction) instead of BEGIN, lock, write, COMMIT. The logic is the one
-- MessageStore::commit_turn documents, in its order:
--   1. lock the agent row (FOR UPDATE: commits of one agent serialise);       status 3: no agent
--   2. the task id already committed? (a fresh snapshot: PL/pgSQL takes one per statement, so a
--      commit that won the row lock while we waited is seen)                 status 1: duplicate
--   3. the fencing token below the newest one seen?                           status 2: stale
--   4. write the messages, the turn row (the idempotency key), its tool calls, the new head.
--                                                                              status 0: applied
-- first_seq/last_seq are the turn's messages (also on a duplicate: the stored turn's).

CREATE FUNCTION agentlab_commit_turn(
    p_agent TEXT, p_task TEXT, p_fence BIGINT,
    p_roles TEXT[], p_contents TEXT[],
    p_input_tokens BIGINT, p_output_tokens BIGINT, p_cost_usd DOUBLE PRECISION,
    p_duration_us BIGINT, p_ttft_us BIGINT, p_llm_calls INTEGER, p_model TEXT,
    p_call_ids TEXT[], p_names TEXT[], p_inputs TEXT[], p_results TEXT[], p_states TEXT[],
    p_call_durations BIGINT[],
    OUT status INTEGER, OUT first_seq BIGINT, OUT last_seq BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
  v_fence BIGINT;
  v_count BIGINT;
  v_commit BIGINT;
  v_messages BIGINT := coalesce(array_length(p_contents, 1), 0);
BEGIN
  SELECT a.fence, a.message_count INTO v_fence, v_count FROM agents a WHERE a.id = p_agent FOR UPDATE;
  IF NOT FOUND THEN
    status := 3;
    RETURN;
  END IF;
  SELECT t.first_seq, t.last_seq INTO first_seq, last_seq
    FROM turns t WHERE t.agent_id = p_agent AND t.task_id = p_task;
  IF FOUND THEN
    status := 1;
    RETURN;
  END IF;
  IF p_fence < v_fence THEN
    status := 2;
    first_seq := NULL;
    last_seq := NULL;
    RETURN;
  END IF;
  INSERT INTO message_log (agent_id, seq, role, content, task_id)
    SELECT p_agent, v_count + x.o, x.r, x.c, p_task
    FROM unnest(p_roles, p_contents) WITH ORDINALITY AS x(r, c, o);
  INSERT INTO turns (agent_id, task_id, first_seq, last_seq, fence, input_tokens, output_tokens, cost_usd,
                     duration_us, ttft_us, llm_calls, model, tool_calls)
    VALUES (p_agent, p_task, v_count + 1, v_count + v_messages, p_fence, p_input_tokens, p_output_tokens,
            p_cost_usd, p_duration_us, p_ttft_us, p_llm_calls, p_model, coalesce(array_length(p_call_ids, 1), 0))
    RETURNING commit_seq INTO v_commit;
  INSERT INTO tool_calls (agent_id, task_id, idx, call_id, name, input, result, state, duration_us, commit_seq)
    SELECT p_agent, p_task, y.o, y.ci, y.n, y.i, y.r, y.s, y.d, v_commit
    FROM unnest(p_call_ids, p_names, p_inputs, p_results, p_states, p_call_durations)
         WITH ORDINALITY AS y(ci, n, i, r, s, d, o);
  UPDATE agents SET message_count = v_count + v_messages, fence = p_fence, last_activity = now(), updated_at = now()
    WHERE id = p_agent;
  status := 0;
  first_seq := v_count + 1;
  last_seq := v_count + v_messages;
END
$$;
