"""Out: the compositor (shader chain), the live window, video files, and the offline render job."""
