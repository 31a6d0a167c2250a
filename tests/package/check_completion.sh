#!/usr/bin/env bash
# check_completion.sh REFRACT
# `refract completion bash` loads in bash and completes subcommands, nested subcommands, the
# flags of a command, the values of a choice setting (also after --key=) and of a positional
# argument with a fixed set (refract score TASK).
set -u
bin=$1
. "$(dirname "$0")/common.sh"
"$bin" completion bash >"$tmp/refract.bash" || { echo "FAIL: refract completion bash exited $?"; exit 1; }

# complete WORD...: the completions of the last WORD, one per line.
cat >"$tmp/run.sh" <<'SH'
. "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
_refract
printf '%s\n' "${COMPREPLY[@]}"
SH
complete_words() { bash "$tmp/run.sh" "$tmp/refract.bash" "$@"; }

bash -c ". '$tmp/refract.bash' && complete -p refract" >"$tmp/spec" 2>&1
expect_has "$tmp/spec" "complete -o default -F _refract refract"
complete_words refract grpo --loss_ >"$tmp/loss_flags"
expect_has "$tmp/loss_flags" "--loss_type"
complete_words refract gr >"$tmp/subs"
expect_has "$tmp/subs" "grpo"
complete_words refract data c >"$tmp/nested"
expect_has "$tmp/nested" "check"
complete_words refract grpo --use_peft --loss_type "" >"$tmp/choices"
for v in grpo bnpo dr_grpo dapo; do expect_has "$tmp/choices" "$v"; done
complete_words refract grpo --loss_type = dr >"$tmp/choices_eq"
expect_has "$tmp/choices_eq" "dr_grpo"
complete_words refract demo --output grpo --ood_split ood_c >"$tmp/after_value"
expect_has "$tmp/after_value" "ood_combo"
complete_words refract score "" >"$tmp/operands"
for v in det rec count ocr cls; do expect_has "$tmp/operands" "$v"; done
complete_words refract completion "" >"$tmp/shells"
expect_has "$tmp/shells" "bash"
# A flag's value is not taken for a subcommand, and a plain value gets no flag list (bash then
# completes file names).
complete_words refract grpo --output_dir "" >"$tmp/value"
if grep -q . "$tmp/value"; then echo "FAIL: --output_dir value completed as: $(cat "$tmp/value")"; fail=1; fi
exit $fail
