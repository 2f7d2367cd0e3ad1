// pismo web page
