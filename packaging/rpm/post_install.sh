# A package never edits a user's files: it only says what each user runs ($1 = 1: first install).
if [ "$1" -eq 1 ]; then
  echo "coffer: to make docker use coffer, each user runs:  coffer setup docker"
  echo "coffer: podman, skopeo and buildah:                  coffer setup podman"
fi
