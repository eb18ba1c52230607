"""The evaluation harness: answer a prompt set with one or two models, run the code, judge, report.

Each step reads and writes plain files in one run folder, so any step can be redone or resumed:
`runner` writes answers.jsonl (with the test result of each answer, from `starchat_lsp.sandbox`),
`judge` writes judgments.jsonl, `report` writes report.md, report.html and a chart.

The completion benchmark (`eval complete`) has its own folder: `holes` cuts holes from real code,
`complete_runner` fills each through the editor's completion functions and scores it
(`complete_scores`), `complete_report` writes its report and chart.
"""
