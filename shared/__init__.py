"""Code every touchbase service uses: configuration, database, auth, errors, HTTP, logging."""
