package coord

var StripesOf = stripes
