"""Contributor accounts and the use cases of the contributors' door (upload, my
contributions, a contribution's timeline and report, withdrawal), for the upload API and the
portal's pages."""
