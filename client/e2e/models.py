"""Builds the tiny models of the VS Code end-to-end test, with the test suite's own builders.

`scripted` answers every prompt with the text of ANSWER_FILE (a review and the fixed function);
`random` never ends its turn, so an answer runs until it is stopped or reaches its token limit;
`complete` answers every prompt with a call of the function (for inline completion).
Usage: python client/e2e/models.py OUT_FOLDER ANSWER_FILE
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from tiny_model import CHATML_TEMPLATE, build_scripted_model, build_tiny_model

out, answer_file = Path(sys.argv[1]), Path(sys.argv[2])
build_scripted_model(out / "scripted", answer_file.read_text(encoding="utf-8"))
build_tiny_model(out / "random", chat_template=CHATML_TEMPLATE)
build_scripted_model(out / "complete", "```python\nprint(moving_average([1, 2, 3, 4], 2))\n```")
print(out)
