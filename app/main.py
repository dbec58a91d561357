"""Entry point: `streamlit run app/main.py` (or `sleepcore app`, or `make app`)."""

import streamlit as st
import torch
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException

from app import data

# The models are small: one intra-op thread records a trace in ~0.1 s, while two threads on a machine whose
# other core is busy (training, another session) oversubscribe and took 8–10 s for the same trace.
torch.set_num_threads(1)

st.set_page_config(page_title="sleepcore: models that sleep", page_icon="🌙", layout="wide")

pages = [
    st.Page("views/overview.py", title="Overview", icon=":material/bar_chart:", url_path="overview", default=True),
    st.Page("views/explorer.py", title="Sleep explorer", icon=":material/bedtime:", url_path="explorer"),
    st.Page("views/probes.py", title="Probe lab", icon=":material/biotech:", url_path="probes"),
    st.Page("views/compare.py", title="Compare", icon=":material/balance:", url_path="compare"),
    st.Page("views/sweep.py", title="Sleep at test time", icon=":material/repeat:", url_path="sweep"),
    st.Page("views/export.py", title="Export", icon=":material/ios_share:", url_path="export"),
]
# The view (checkpoint, example, window, pass, layer, ...) follows the user from page to page. The sidebar's links
# carry it: Streamlit's own page menu drops the URL's parameters, so a page change took two history entries (the
# bare page, then the page with the view written back), and Back seemed to do nothing. The links are drawn at the
# end of the run, with the URL the run ends with. A page opened with no parameters (a typed URL) still gets those
# the last page ended with. Every page checks them as it checks a typed URL; a URL with any parameter is taken as
# it is.
links = st.sidebar.container()  # above what the page puts in the sidebar
last = st.session_state.get("last_params")
st.session_state["params_carried"] = carried = not st.query_params and bool(last)
data.begin_url(last if carried else st.query_params.to_dict())
data.refresh_if_changed()
replaced = False
try:
    st.navigation(pages, position="hidden").run()
except RerunException:  # a newer run replaces this one (the user moved on, or pressed Back): its URL is stale, and
    replaced = True  # written during a Back it would land on the history entry the browser went back to
    raise
finally:  # also when a page stops early (data.stop), as pages with nothing to show do
    if not replaced:
        params = data.end_url()  # the run's one write of the URL (app/data.py)
        st.session_state["last_params"] = dict(params)  # what the browser was sent
        with links:
            for page in pages:
                st.page_link(page, query_params=params)
            st.divider()
