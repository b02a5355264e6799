print "perl v1\n";
