echo "deleted-v1"
