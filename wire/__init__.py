"""Wire format and client shared by the backend and the GIMP plug-in (stdlib + pyzmq only)."""
