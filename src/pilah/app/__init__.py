"""The Streamlit app: the page, its texts and disposal guidance in two languages, and the session's history."""
