"""HTTP: the Application Interface API and the management console (to come)."""
