"""The Streamlit front end: widgets and layout only. It reads traces and tables through analysis/ and sleepcore/."""
