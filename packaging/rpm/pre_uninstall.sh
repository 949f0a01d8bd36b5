# docker fails every pull while config.json names a helper that is gone ($1 = 0: removal).
if [ "$1" -eq 0 ]; then
  echo "coffer: users who ran 'coffer setup docker' (or podman) should run"
  echo "coffer:   coffer setup --undo docker    (and: coffer setup --undo podman)"
  echo "coffer: or docker commands that need credentials fail once the helper is gone"
fi
