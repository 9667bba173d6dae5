#!/usr/bin/env bash
# Copies this checkout to DEST (…/ansible_collections/msgroute/rollout), the layout ansible-test needs:
# every tracked or new file that git does not ignore, minus what galaxy.yml's build_ignore leaves out of
# the built collection (.ci, bench, collections/ansible_collections). A copy, not a link: ansible-test
# reads the collection's path from the directory it runs in.
# Usage: tests/sanity/copy-collection.sh DEST
set -euo pipefail
dest=$1
case $dest in */ansible_collections/msgroute/rollout) ;; *) echo "DEST must end in ansible_collections/msgroute/rollout" >&2; exit 2 ;; esac
rm -rf "$dest"
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard \
  | grep -zv -e '^\.ci/' -e '^bench/' -e '^collections/ansible_collections/' \
  | while IFS= read -r -d '' path; do
      # A tracked file deleted in the working tree is not part of what is tested.
      if [ -e "$path" ] || [ -L "$path" ]; then printf '%s\0' "$path"; fi
    done \
  | xargs -0 cp -P --parents -t "$dest"
