"""Small pieces every domain uses: content hashes, atomic writes, safe names, scratch folders."""
