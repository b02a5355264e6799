{ print "awk", $2 }
