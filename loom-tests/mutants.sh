#!/usr/bin/env bash
# Do the loom models bite? Each mutant is a deliberate break of the ring
# protocol (see `mutant!` in src/sync/faults.rs), compiled into every loom build and
# switched on at run time with SHMQ_MUTANT=NAME. For each mutant this script
# runs the models listed for it below and checks that every one of them
# FAILS (a loom panic: data race, deadlock, or a broken assertion; running
# out of time does not count).
#
#   loom-tests/mutants.sh            check the table below (CI runs this)
#   loom-tests/mutants.sh --matrix   run every mutant against every model and
#                                    print the whole matrix (slow: a model a
#                                    mutant does not break runs to the end)
#
# Environment: LOOM_MAX_PREEMPTIONS (default 2), MUTANT_TIMEOUT seconds per
# run (default 600), BIN to use a prebuilt test binary.
set -uo pipefail
cd "$(dirname "$0")/.."

# mutant | models that must fail with it
TABLE='
commit_relaxed            | spsc_wrap_padding_and_blocking mpsc_two_producers_fifo
no_recheck                | spsc_wrap_padding_and_blocking maxsize_full_sender_woken_by_take wait_ready_is_woken_and_takes_nothing
seq_after_recheck         | spsc_wrap_padding_and_blocking wait_ready_is_woken_and_takes_nothing
register_after_recheck    | spsc_wrap_padding_and_blocking maxsize_full_sender_woken_by_take wait_ready_is_woken_and_takes_nothing
close_no_wake             | close_wakes_blocked_sender_and_receiver close_races_send_and_recv wait_ready_is_woken_and_takes_nothing
clear_relaxed             | spmc_two_consumers_out_of_order_release
head_load_relaxed         | spsc_wrap_padding_and_blocking spmc_producer_reuses_room_released_out_of_order
head_move_relaxed         | spmc_producer_reuses_room_released_out_of_order
done_relaxed              | three_consumers_release_concurrently
advance_by_store          | three_consumers_release_concurrently
take_by_store             | spmc_two_consumers_out_of_order_release mpmc_two_by_two_tiny_ring
maxsize_off_by_one        | maxsize_never_exceeded_and_try_never_waits
no_maxsize_wake           | maxsize_full_sender_woken_by_take
try_recv_waits_for_commit | try_calls_never_wait
recv_closed_early         | close_races_send_and_recv
claim_ignores_closed      | close_races_send_and_recv close_wakes_blocked_sender_and_receiver
batch_send_no_wake        | batch_send_wakes_receiver_once_per_batch
batch_release_no_wake     | batch_release_wakes_blocked_sender
batch_take_no_wake        | batch_take_wakes_sender_blocked_on_maxsize
wake_keeps_epoch          | spsc_wrap_padding_and_blocking maxsize_full_sender_woken_by_take wait_ready_is_woken_and_takes_nothing
leave_after_wake          | sleepers_woken_together_are_uncounted_once
claim_unnoted             | dead_producer_claim_is_skipped
take_unmarked             | dead_consumer_room_is_reclaimed
move_unnoted              | dead_releaser_head_move_is_finished
recover_ignores_liveness  | live_slow_producer_is_never_skipped
taken_relaxed             | try_recv_never_empty_while_a_message_waits
leave_no_wake             | receiver_learns_the_last_sender_left_after_its_message
disconnect_before_attempt | receiver_learns_the_last_sender_left_after_its_message
disconnected_relaxed      | receiver_learns_the_last_sender_left_after_its_message
disconnect_unrechecked    | receiver_learns_the_last_sender_left_after_its_message
enter_unbarriered         | a_slot_taken_over_is_never_used_twice_at_once
enter_unchecked           | a_slot_taken_over_is_never_used_twice_at_once
takeover_no_wait          | a_slot_taken_over_is_never_used_twice_at_once
takeover_unmarked         | a_taker_is_busy_until_its_operation_ends
reap_unsettled            | dead_holder_lane_is_reaped_only_once_settled
slack_unbounded           | full_sender_takes_the_room_it_needs_without_waiting_for_slack
slack_head_relaxed        | full_sender_reuses_the_slack_it_waited_for
overflow_take_relaxed     | large_messages_reuse_the_overflow_area warm_units_are_reused_then_given_back
overflow_free_relaxed     | large_messages_reuse_the_overflow_area warm_units_are_reused_then_given_back
sweep_keeps_warm          | warm_units_are_reused_then_given_back
lease_done_on_death       | dead_leased_holder_message_goes_back_to_the_queue
lease_unnoted             | dead_leased_holder_message_goes_back_to_the_queue
return_uncounted          | dead_leased_holder_message_goes_back_to_the_queue a_message_given_back_is_taken_once
return_taken_by_store     | a_message_given_back_is_taken_once
ack_unsettled             | dead_leased_receiver_inside_ack_is_not_given_back
overflow_never_freed      | large_messages_reuse_the_overflow_area
block_never_freed         | unbounded_blocks_come_and_go
overflow_link_skipped     | large_messages_reuse_the_overflow_area
sweep_ignores_liveness    | large_messages_reuse_the_overflow_area
sweep_ignores_head        | large_messages_reuse_the_overflow_area
sweep_waits_for_reap      | dead_large_sender_leaves_nothing dead_block_installer_leaves_nothing
sweep_keeps_linked        | dead_large_receiver_frees_its_run dead_block_installer_leaves_nothing
'

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
TIMEOUT="${MUTANT_TIMEOUT:-600}"

if [ -z "${BIN:-}" ]; then
    BIN=$(RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
        cargo test -p loom-tests --release --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*loom_ring[^"]*\)".*/\1/p' | tail -1)
    [ -x "$BIN" ] || { echo "could not build the loom test binary" >&2; exit 2; }
fi

# run MUTANT MODEL -> prints one of: pass, timeout, deadlock, data-race,
# assertion, panic
run() {
    local out rc
    # SHMQ_LOOM_SLOW: the slow models at their full bound too (a mutant
    # fails fast; CI's model run keeps them at bound 1, see loom_ring.rs).
    out=$(SHMQ_LOOM_SLOW=1 SHMQ_MUTANT="$1" RUST_BACKTRACE=0 timeout "$TIMEOUT" "$BIN" --exact "$2" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then echo pass
    elif [ $rc -eq 124 ]; then echo timeout
    elif grep -q "1 passed" <<<"$out"; then echo pass
    elif grep -qi "deadlock" <<<"$out"; then echo deadlock
    elif grep -q "Causality violation" <<<"$out"; then echo data-race
    elif grep -q "panicked at loom-tests" <<<"$out"; then echo assertion
    else echo panic
    fi
}

models() { "$BIN" --list 2>/dev/null | sed -n 's/: test$//p'; }

if [ "${1:-}" = "--matrix" ]; then
    mapfile -t ALL < <(models)
    printf '| mutant |'; printf ' %s |' "${ALL[@]}"; echo
    printf '| --- |'; printf ' --- |%.0s' "${ALL[@]}"; echo
    while IFS='|' read -r m _; do
        m=$(echo "$m" | xargs); [ -n "$m" ] || continue
        printf '| %s |' "$m"
        for t in "${ALL[@]}"; do printf ' %s |' "$(run "$m" "$t")"; done
        echo
    done <<<"$TABLE"
    exit 0
fi

fail=0
while IFS='|' read -r m ts; do
    m=$(echo "$m" | xargs); [ -n "$m" ] || continue
    for t in $ts; do
        start=$(date +%s)
        r=$(run "$m" "$t")
        took=$(( $(date +%s) - start ))
        case $r in
            pass|timeout) verdict="NOT CAUGHT"; fail=1 ;;
            *) verdict=caught ;;
        esac
        printf '%-26s %-50s %-10s %-10s %3ss\n' "$m" "$t" "$verdict" "$r" "$took"
    done
done <<<"$TABLE"
exit $fail
