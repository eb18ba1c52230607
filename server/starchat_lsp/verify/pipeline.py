"""Verified feedback and fixes: one implementation for the CLI, the language server and the eval.

1. Evidence, before any model runs: checks from the user's note, the docstrings and the
   workspace tests (Python).
2. One `Engine.together` call (one llama.cpp batch per token): the draft, the plain answer
   (greedy), streamed to the user as it comes; fixes sampled at a temperature from the fix
   prompt (the code only, with the checks it must pass); and, when no check
   says what the right result is, tests the model writes from the function's contract
   (signature, docstring, note), which only order fixes (verify.model_tests).
3. Candidates: the draft's fix and the samples, duplicates (same syntax tree) counted as votes.
4. Checks on each: static ones, then the evidence in the sandbox (never in this process).
5. Choose by `Candidate.rank`. When nothing can be offered, or the choice fails one of the
   user's checks, a second look: the feedback prompt again, the note followed by what the
   draft's fix changed and why it is none (the code came back unchanged, does not run, fails
   `assert ...` with what it got); greedy, and as many samples as before, together. Those fixes
   join the candidates and the choice is made again. The model's own tests never start one.
6. Say how sure we are. A chosen sample's fix comes under the draft's reasons, said to be
   another fix; a second look's answer comes whole, after why the first fix was none. Cancel
   stops all of it, inside the generations too.

Everything here blocks: callers run it on their model worker thread.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starchat_lsp import edits, sandbox, tasks
from starchat_lsp.context import prompts
from starchat_lsp.engine.base import (
    Ask,
    CancelFlag,
    ChatMessage,
    Engine,
    GenerationResult,
    GenerationSettings,
    StopReason,
)
from starchat_lsp.errors import EngineError
from starchat_lsp.verify import analyzer, checks, evidence, model_tests, ranking
from starchat_lsp.verify.checks import Assessment, Harness
from starchat_lsp.verify.evidence import Check
from starchat_lsp.verify.ranking import Candidate

log = logging.getLogger(__name__)

# The model's tests: at most this many tokens (see `_Run.tests_ask`).
TESTS_TOKENS = 128


@dataclass(frozen=True, kw_only=True)
class VerifyOptions:
    enabled: bool = True
    candidates: int = 2  # fixes to consider, the draft's included
    temperature: float = 0.8  # for the sampled fixes
    time_budget_s: float | None = None  # for the samples and tests; None: the draft's limit
    limits: sandbox.Limits = field(default_factory=lambda: sandbox.Limits(time_s=5.0))
    workspace: Path | None = None  # where to look for tests that call the function


@dataclass(frozen=True)
class Stage:
    """A step of verification, for progress displays: evidence, sampling, checking, done."""

    name: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Verified:
    outcome: tasks.Outcome  # what the user gets: the chosen fix, its explanation, the verdict
    draft: tasks.Outcome
    draft_result: GenerationResult
    evidence: list[Check]
    generated: list[Check]  # tests the model wrote (only to order fixes)
    candidates: list[Candidate]
    chosen: int | None  # index of the chosen candidate
    verdict: str
    verified: bool  # the chosen fix passes every check found (and some were found)
    seconds: float
    tokens_out: int  # every generation's tokens, the draft's included
    phases: dict[str, float] = field(default_factory=dict)  # seconds: evidence, model, checks
    second_from: int | None = None  # the first candidate of the second look; None: none asked


def _no_stage(stage: Stage) -> None:
    pass


@dataclass
class _Run:
    request: tasks.CodeRequest
    prepared: tasks.Prepared
    engine: Engine
    options: VerifyOptions
    cancel: CancelFlag
    on_stage: Callable[[Stage], None]
    evidence: list[Check] = field(default_factory=list)
    harness: Harness | None = None
    why_not_run: str = ""
    reproduced: int = 0
    original_signatures: dict[str, list[str]] = field(default_factory=dict)
    system_prompt: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    tokens_out: int = 0
    fix_messages: list[ChatMessage] = field(default_factory=list)  # what the samples were asked
    generated: list[Check] = field(default_factory=list)  # tests the model wrote
    reproducing: list[Check] = field(default_factory=list)  # those that fail on the original
    found_before: set[tuple[str, str]] | None = None  # the analyzer's findings in the file (Python)
    second_from: int | None = None  # the index of the first candidate of the second look

    @property
    def language(self) -> str | None:
        return self.prepared.context.language

    def collect_evidence(self) -> None:
        """The checks the note, the docstrings and the workspace's tests give: no code runs."""
        ctx = self.prepared.context
        self.original_signatures = checks.signatures(ctx.code, self.language)
        if self.language != "python":
            self.why_not_run = "checks run only for Python"
            return
        self.on_stage(Stage("evidence", "looking for examples in your note, docstrings and tests"))
        names = evidence.function_names(ctx.code)
        self.evidence = evidence.gather(ctx.code, self.request.note, names, self.options.workspace)

    def run_evidence(self) -> None:
        """The analyzer's findings and the checks on the user's code, in the sandbox."""
        if self.language != "python":
            return
        ctx = self.prepared.context
        self.found_before = analyzer.kinds(analyzer.analyze(self.request.text, self.request.path))
        names = evidence.function_names(ctx.code)
        self.harness, detail = checks.find_harness(
            self.request, ctx.imports, names, self.options.limits
        )
        if self.harness is None:
            self.evidence = []
            self.why_not_run = f"your code does not load on its own: {detail}"
            return
        for check in self.evidence:
            if self.cancel.cancelled:
                return
            if checks.run_check(self.harness, self.request.text, check).status != "pass":
                self.reproduced += 1

    def assess(self, outcome: tasks.Outcome) -> Assessment:
        found = Assessment(
            problems=checks.static_problems(
                outcome, self.original_signatures, self.request.note, self.language
            )
        )
        if outcome.new_text is None:
            return found
        found.changed_lines = checks.changed_line_count(self.request.text, outcome.new_text)
        if self.found_before is not None and not found.problems:
            after = analyzer.kinds(analyzer.analyze(outcome.new_text, self.request.path))
            added, removed = after - self.found_before, self.found_before - after
            found.lint = -1 if added else 1 if removed else 0
        if self.harness is None or found.problems:
            return found
        found.loads, detail = checks.loads(self.harness, outcome.new_text)
        if not found.loads:
            found.load_error = detail
            found.failed = [(check, detail) for check in self.evidence]
            return found
        # A fix that hangs on one check would likely hang on the next: each costs the sandbox's
        # whole time limit (12 of them took 60 s on a development case), so the rest are not run.
        hung = ""
        for check in self.evidence:
            if self.cancel.cancelled:
                break
            if hung:
                found.failed.append((check, f"not run: `{hung}` timed out before it"))
                continue
            result = checks.run_check(self.harness, outcome.new_text, check)
            if result.status == "pass":
                found.passed.append(check)
            else:
                found.failed.append((check, result.detail))
                hung = check.code if result.status == "timeout" else ""
        for check in self.generated:
            if self.cancel.cancelled or hung:
                break
            result = checks.run_check(self.harness, outcome.new_text, check)
            hung = check.code if result.status == "timeout" else ""
            if result.status == "pass":
                found.generated_passed += 1
                if check in self.reproducing:
                    found.reproduced_passed.append(check)
        return found

    def tests_ask(self, settings: GenerationSettings) -> tuple[Ask, list[str]] | None:
        """Tests from the model, when the user's checks can't tell fixes apart (Python only)."""
        if self.language != "python" or evidence.says_what_is_right(self.evidence):
            return None
        asked = model_tests.request(
            self.prepared.context.code, self.request.note, self.system_prompt
        )
        if asked is None:
            return None
        messages, names = asked
        # Tests only order fixes, and beside the draft each of their tokens costs it a quarter
        # of a step: at most TESTS_TOKENS (3 or 4 asserts; the model often writes on past the
        # 4 asked for), and no longer than the draft (the asserts whole by then count). In full
        # they took 1.4x the draft's time on a development case (256 tokens on a 209-token draft).
        tests = GenerationSettings(
            max_new_tokens=min(settings.max_new_tokens, TESTS_TOKENS),
            time_limit_s=settings.time_limit_s,
        )
        return Ask(messages, tests, until_first_ends=True), names

    def take_tests(self, answer: GenerationResult, names: list[str]) -> None:
        """The model's tests, and which of them fail on the user's code (reproduce the report)."""
        if answer.stop_reason is StopReason.CANCELLED or self.harness is None:
            return
        ended = answer.stop_reason in (StopReason.EOS, StopReason.STOP_STRING)
        self.generated = model_tests.parse(answer.text, names, cut=not ended)
        # A test that fails on the user's code reproduces what they reported, if the test is
        # right (the model wrote it): a fix that passes one ranks above one that passes only
        # others, and the verdict shows it, but never calls the fix verified for it.
        for check in self.generated:
            if self.cancel.cancelled:
                return
            status = checks.run_check(self.harness, self.request.text, check).status
            if status != "pass":
                self.reproducing.append(check)
            if status == "timeout":  # it hangs: the others are not run on it (see `assess`)
                return

    def add(self, outcome: tasks.Outcome) -> Candidate:
        key = ranking.fix_key(outcome, self.language)
        for known in self.candidates:
            if key is not None and known.key == key:
                known.votes += 1
                return known
        index = len(self.candidates)
        self.on_stage(Stage("checking", f"checking candidate fix {index + 1}"))
        assessment = self.assess(outcome)
        candidate = Candidate(index=index, outcome=outcome, assessment=assessment, key=key)
        self.candidates.append(candidate)
        return candidate

    def passes_all(self, candidate: Candidate) -> bool:
        """It passes every check, and one of them says what the right result is.

        "No longer gives X" or "no longer crashes" alone is too weak to stop looking or to
        call a fix verified.
        """
        passed_all = len(candidate.assessment.passed) == len(self.evidence)
        return passed_all and evidence.says_what_is_right(self.evidence)

    def samples_ask(self, settings: GenerationSettings) -> Ask:
        """The fixes to sample: the fix prompt, with the checks the fix must pass."""
        ctx = self.prepared.context
        messages = prompts.build_fix_prompt(
            ctx,
            self.request.note,
            self.system_prompt,
            checks=tuple(c.code for c in self.evidence if c.kind != "runs"),
            hints=tuple(finding.describe() for finding in self.prepared.findings),
        )
        self.fix_messages = messages
        # The code only: decoded beside the draft, a sample costs each step it is still running
        # (reasons first made them longer than the draft: 2.2x its time on a development case).
        room = 2 * self.engine.count_tokens(ctx.code) + 96
        sampled = GenerationSettings(
            max_new_tokens=min(settings.max_new_tokens, room),
            temperature=self.options.temperature,
            top_p=0.95,
            seed=1,
            time_limit_s=self.options.time_budget_s or settings.time_limit_s,
        )
        return Ask(messages, sampled, self.options.candidates - 1)

    def take_samples(self, results: list[GenerationResult]) -> None:
        prepared = tasks.Prepared(messages=self.fix_messages, context=self.prepared.context)
        for result in results:
            if result.stop_reason is StopReason.CANCELLED or self.cancel.cancelled:
                return
            self.add(tasks.conclude(tasks.TaskKind.FIX, self.request, prepared, result))

    def lessons(self, chosen: Candidate | None) -> tuple[str, ...]:
        """What shows the first answers' fixes are no fix, said of the draft's (the change the
        second look says was tried); () when nothing does: a fix was chosen and fails none of
        the user's checks (the model's own tests are too weak to say a fix is wrong)."""
        if chosen is not None and not chosen.assessment.failed:
            return ()
        draft = self.candidates[0]
        found = draft.assessment
        if draft.outcome.fix is None:
            return ("It gave no corrected code.",)
        if draft.outcome.new_text is not None and not draft.outcome.diff:
            return ("Changing nothing does not fix it: the bug is in this code.",)
        said = [f"{problem[:1].upper()}{problem[1:]}." for problem in found.problems]
        if found.loads is False:
            said.append(f"With it, the code does not run: {_short(found.load_error)}")
        else:
            said.extend(_failure(check, detail) for check, detail in found.failed[:2])
        if not said and chosen is not None:  # the draft passed; the chosen sample did not
            said.extend(
                f"Another fix: {_failure(check, detail)}"
                for check, detail in chosen.assessment.failed[:2]
            )
        return tuple(said)

    def second_look(self, learned: tuple[str, ...], settings: GenerationSettings) -> None:
        """Ask again, with what the draft's fix changed and what we learned of it, reasons
        first: greedy, and as many samples as the first round had; their fixes join the
        candidates."""
        ctx = self.prepared.context
        messages = prompts.build_second_look_prompt(
            ctx,
            self.request.note,
            _changed_lines(ctx.code, self.candidates[0].outcome.fix),
            learned,
            self.system_prompt,
            hints=tuple(finding.describe() for finding in self.prepared.findings),
        )
        asks = [Ask(messages, settings)]
        if self.options.candidates > 1:
            sampled = GenerationSettings(
                max_new_tokens=settings.max_new_tokens,
                temperature=self.options.temperature,
                top_p=0.95,
                seed=2,
                time_limit_s=settings.time_limit_s,
            )
            asks.append(Ask(messages, sampled, self.options.candidates - 1))
        try:
            results = self.engine.together(asks, self.cancel, None)
        except EngineError as error:  # the longer prompt does not fit the window: no second look
            log.info("no second look: %s", error)
            return
        prepared = tasks.Prepared(messages=messages, context=self.prepared.context)
        self.second_from = len(self.candidates)
        for answers in results:
            for result in answers:
                self.tokens_out += result.tokens_out
                if result.stop_reason is StopReason.CANCELLED or self.cancel.cancelled:
                    return
                self.add(tasks.conclude(tasks.TaskKind.FIX, self.request, prepared, result))


def run(
    kind: tasks.TaskKind,
    request: tasks.CodeRequest,
    engine: Engine,
    prepared: tasks.Prepared,
    settings: GenerationSettings,
    *,
    on_text: Callable[[str], None] | None = None,
    options: VerifyOptions | None = None,
    cancel: CancelFlag | None = None,
    on_stage: Callable[[Stage], None] = _no_stage,
    system_prompt: str | None = None,
) -> Verified:
    """Evidence, then draft, samples and tests together, then check and choose; see the
    module's docstring. `on_text` gets the draft as it streams, on the model's thread.
    """
    options = options or VerifyOptions()
    cancel = cancel or CancelFlag()
    started = time.monotonic()
    job = _Run(request, prepared, engine, options, cancel, on_stage)
    job.system_prompt = system_prompt
    job.collect_evidence()
    phases = {"evidence": time.monotonic() - started}
    asks = [Ask(prepared.messages, settings)]
    tests: tuple[Ask, list[str]] | None = None
    if options.candidates > 1:
        asks.append(job.samples_ask(settings))
        tests = job.tests_ask(settings)
        if tests is not None:
            asks.append(tests[0])
        wanted = options.candidates - 1
        also = " and tests" if tests is not None else ""
        fixes = "another fix" if wanted == 1 else f"{wanted} more fixes"
        on_stage(Stage("sampling", f"drafting an answer with {fixes}{also} at once"))
    asked = time.monotonic()
    results = engine.together(asks, cancel, on_text)
    answered = time.monotonic()
    phases["model"] = answered - asked
    draft_result = results[0][0]
    draft = tasks.conclude(kind, request, prepared, draft_result)
    job.tokens_out = sum(result.tokens_out for answers in results for result in answers)

    def finished(chosen: Candidate | None, outcome: tasks.Outcome, verdict: str) -> Verified:
        ended = time.monotonic()
        phases["checks"] = ended - answered - phases.get("second-look", 0.0)
        return Verified(
            outcome=outcome,
            draft=draft,
            draft_result=draft_result,
            evidence=job.evidence,
            generated=job.generated,
            candidates=job.candidates,
            chosen=None if chosen is None else chosen.index,
            verdict=verdict,
            verified=chosen is not None and job.passes_all(chosen),
            seconds=round(ended - started, 3),
            tokens_out=job.tokens_out,
            phases={name: round(seconds, 3) for name, seconds in phases.items()},
            second_from=job.second_from,
        )

    if cancel.cancelled or draft_result.stop_reason is StopReason.CANCELLED:
        return finished(None, draft, "cancelled")
    job.run_evidence()
    if tests is not None:
        job.take_tests(results[2][0], tests[1])
    # Tried and dropped (docs/eval/README.md): asking the samples as a follow-up to a draft
    # that went wrong, saying what was wrong, reasons first: 5 of 20 development cases passed,
    # against 8 of 20 with the fix prompt, which asks for the code with the checks it must pass.
    first = job.add(draft)
    if len(results) > 1:
        job.take_samples(results[1])
    # A draft that passes every check is what the user read as it streamed: it stays.
    chosen = first if job.passes_all(first) else ranking.choose(job.candidates)
    learned = job.lessons(chosen)
    if learned and not cancel.cancelled:
        on_stage(
            Stage("second-look", "no fix passed the checks yet: asking again, with what went wrong")
        )
        looked = time.monotonic()
        job.second_look(learned, settings)
        phases["second-look"] = time.monotonic() - looked
        if not cancel.cancelled:
            chosen = ranking.choose(job.candidates)
    verdict = ranking.verdict(
        chosen,
        job.evidence,
        runnable=job.harness is not None,
        why_not_run=job.why_not_run,
        reproduced=job.reproduced,
        generated=len(job.generated),
    )
    on_stage(Stage("done", verdict))
    if chosen is None:
        return finished(None, _refused(draft, verdict), verdict)
    outcome = chosen.outcome
    if job.second_from is not None and chosen.index >= job.second_from:
        outcome = dataclasses.replace(outcome, answer=_second_answer(outcome, learned))
    elif chosen.index != 0:
        outcome = dataclasses.replace(outcome, answer=_sampled_answer(outcome, prepared))
    assert outcome.new_text is not None  # chosen fixes are applicable
    lines = edits.replaced_lines(request.text, outcome.new_text)
    outcome = dataclasses.replace(outcome, lines=lines or outcome.lines)
    return finished(chosen, outcome, verdict)


def _sampled_answer(outcome: tasks.Outcome, prepared: tasks.Prepared) -> str:
    """The answer for a chosen fix that is not the draft's: the fix, said to be another one.

    The samples are asked for the code only (they decode beside the draft: their length is
    time), so the draft's reasons stay above it in the chat and the verdict says what it passed.
    """
    fence = f"```{prepared.context.language or ''}"
    return (
        "Checked fix (another than the first answer's; the verdict says what it passed):\n\n"
        f"{fence}\n{outcome.fix}\n```"
    )


def _second_answer(outcome: tasks.Outcome, learned: tuple[str, ...]) -> str:
    """The answer of a fix from the second look: why the first was none, then its reasons."""
    why = " ".join(learned)
    return f"A second look (the first answer's fix did not do: {why})\n\n{outcome.answer}"


def _changed_lines(code: str, fix: str | None, most: int = 12) -> str | None:
    """The lines a fix changed, as a diff without context (`-old`, `+new`); None if none."""
    if not fix:
        return None
    old_lines = code.splitlines()
    changed = [
        f"{sign}{line}"
        for change in edits.line_edits(code, fix)
        for sign, lines in (
            ("-", old_lines[change.start_line : change.end_line]),
            ("+", change.new_lines),
        )
        for line in lines
    ]
    if not changed or len(changed) > most:
        return None  # a rewrite: the lines say little of what was tried
    return "\n".join(changed)


def _failure(check: Check, detail: str) -> str:
    """What a failed check did, for the model: It still fails `assert f(2) == 4` (got 3)."""
    said = _short(detail)
    failed = f"failed: {check.code}"
    if said.startswith(failed):  # the sandbox's "failed: CHECK (got X)"
        return f"It still fails `{check.code}`{said[len(failed) :]}."
    if said.startswith("raised under test: "):
        return f"`{check.code}` raises {said.removeprefix('raised under test: ')}"
    if said.startswith("killed"):
        return f"`{check.code}` never finishes ({said})."
    return f"It still fails `{check.code}`: {said}"


def _short(detail: str, size: int = 200) -> str:
    """The sandbox's detail on one line, cut to `size` characters."""
    line = " ".join(detail.split())
    return line if len(line) <= size else line[: size - 3] + "..."


def _refused(draft: tasks.Outcome, verdict: str) -> tasks.Outcome:
    """The draft's answer, its fix marked as not to apply (it failed the checks)."""
    if draft.new_text is None or not draft.diff:
        return draft
    return dataclasses.replace(draft, problems=[*draft.problems, verdict])
