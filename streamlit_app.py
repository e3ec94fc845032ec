"""Entry point for `streamlit run streamlit_app.py` and Streamlit Community Cloud.

The Cloud installs `requirements.txt` and runs this file from the repository root; the package itself
is not installed there, so its source folder goes on the path first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from pilah.app.page import main

main()
