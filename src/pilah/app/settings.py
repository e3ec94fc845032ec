"""How `pilah app` hands its options to the Streamlit page, which runs in a child process: environment variables."""

CORRECTIONS_ENV = "PILAH_CORRECTIONS"  # a folder: corrections that users agree to share are kept there
REGION_ENV = "PILAH_REGION"  # the region whose disposal advice shows first
